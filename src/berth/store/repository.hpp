// A repository of snapshots in a directory (on the user's machine by default).
//
//   config.json              {"version":1,"id":...,"chunker":{min,avg,max}}
//   data/ab/<pack id>        pack files: chunks back to back (zstd or raw)
//   index/<pack id>.idx      what each pack holds: chunk id, offset, lengths, encoding
//   trees/<tree id>          zstd-compressed tree objects
//   snapshots/<id>.json      one small file per snapshot
//   lock                     flock: writers exclusive, readers shared; the kernel drops it
//                            when the holder dies, so a killed save never leaves it stale
//
// Crash safety: a pack is written to a temp name, fsynced and renamed; only then its index,
// the same way. A chunk exists for the repository only once its index is durable, so kill -9
// mid-save leaves at worst an unindexed pack (removed by prune) and the next save resends only
// what no index names. Trees and the snapshot file are written last.
#pragma once

#include "store/chunker.hpp"
#include "store/objects.hpp"
#include "store/repo_store.hpp"
#include "util/result.hpp"
#include <cstring>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace berth::store {

struct ChunkIdHash {
    std::size_t operator()(const ChunkId &id) const {
        std::size_t h;
        std::memcpy(&h, id.data(), sizeof h);
        return h;
    }
};

struct Location {
    std::uint32_t pack = 0; // index into m_packs
    std::uint64_t offset = 0;
    std::uint32_t stored_len = 0, raw_len = 0;
    std::uint8_t flags = 0;
};

class Repository : public RepoStore {
public:
    // Opens REPO, creating it if `create`. Fails naming the path and what to do.
    static Result<Repository> open(const std::filesystem::path &root, bool create);

    Repository(Repository &&) noexcept;
    ~Repository();

    // exclusive: save, forget, prune. shared: restore, verify, diff.
    Result<> lock(bool exclusive) override;

    const std::filesystem::path &root() const { return m_root; }
    std::string location() const override { return m_root.string(); }
    std::optional<std::filesystem::path> local_root() const override { return m_root; }
    const std::string &id() const override { return m_id; }
    ChunkerParams chunker() const override { return m_chunker; }

    bool has(const ChunkId &id) const { return m_index.count(id) != 0; }
    std::size_t chunk_count() const { return m_index.size(); }
    std::vector<ChunkId> chunk_ids() const override;

    // Adds a chunk (already compressed as `flags` says) to the pack being written.
    Result<> add(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                 std::string_view stored) override;
    // Adds a chunk given as plain bytes: compressed (when it pays) straight into the pack
    // being written. Returns the bytes stored.
    Result<std::size_t> add_plain(const ChunkId &id, std::string_view raw) override;
    // Writes the pending pack. Packs are made durable in batches (one syncfs), and only then
    // get their indexes; commit() finishes the last batch and makes the indexes durable.
    Result<> flush();
    Result<> commit() override;
    std::uint64_t stored_bytes_written() const { return m_written; }
    // How many written packs wait for one syncfs before their indexes (durable progress);
    // a served repository syncs more often, as a cut connection is likelier than a crash.
    void set_batch_packs(std::size_t n) { m_batch_packs = n ? n : 1; }

    // The chunk's plain bytes, checked against its id.
    Result<std::string> read(const ChunkId &id) override;
    // The chunk as stored (compressed or not), for sending; the receiver checks the hash.
    Result<std::pair<std::uint8_t, std::string>> read_stored(const ChunkId &id,
                                                             std::uint32_t &raw_len) override;

    Result<std::string> put_tree(const Tree &t) override;
    Result<Tree> get_tree(const std::string &id) override;
    Result<> put_snapshot(const Snapshot &s) override;
    // Every snapshot; fails naming the first damaged snapshot file.
    Result<std::vector<Snapshot>> snapshots();
    // Every snapshot file, good or damaged (for listing, verify and forget).
    SnapshotScan scan_snapshots() override;
    // Index files that could not be read (their chunks are unknown to this repository).
    const std::vector<std::string> &damaged_indexes() const { return m_damaged; }
    // By id or unique id prefix, or "latest" (refused while any snapshot is unreadable).
    Result<Snapshot> find_snapshot(const std::string &ref) override;
    // Removes a snapshot file by id or unique prefix (damaged ones too); returns its id.
    Result<std::string> forget(const std::string &ref) override;
    Result<VerifyReport> verify(const std::function<void(std::uint64_t)> &progress) override;
    Result<PruneReport> prune() override;

private:
    Repository() = default;
    Result<> load_index();
    std::filesystem::path pack_path(const std::string &pack_id) const;

    std::filesystem::path m_root;
    std::string m_id;
    ChunkerParams m_chunker;
    int m_lock_fd = -1;
    std::vector<std::string> m_packs;
    std::vector<std::string> m_damaged;
    std::unordered_map<ChunkId, Location, ChunkIdHash> m_index;
    std::string m_pack_buf;
    struct Pending {
        ChunkId id;
        std::uint64_t offset;
        std::uint32_t stored_len, raw_len;
        std::uint8_t flags;
    };
    std::vector<Pending> m_pending;
    struct Unsynced {
        std::string pack_id;
        std::vector<Pending> entries;
    };
    std::vector<Unsynced> m_unsynced; // written packs whose data is not yet known durable
    Result<> sync_batch();
    Result<> sync_fs();
    std::uint64_t m_written = 0;
    std::size_t m_batch_packs = 8;
    int m_read_fd = -1;
    std::uint32_t m_read_pack = UINT32_MAX;
};

// The repository's default place: $XDG_DATA_HOME/berth/repo.
std::filesystem::path default_repo();

} // namespace berth::store
