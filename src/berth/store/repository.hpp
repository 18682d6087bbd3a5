// A repository of snapshots, on any Backend (a directory here, a directory on an SSH host).
//
//   config.json              {"version":1|2,"id":...,"chunker":{min,avg,max}, ...}
//                            version 2: encrypted ("encryption":"aes-256-gcm", "check": a
//                            sealed marker that tells a wrong key from damage)
//   keys/<id>                the master key wrapped by a passphrase (scrypt), one per passphrase
//   data/ab/<pack id>        pack files: chunks back to back (zstd or raw; sealed each)
//   index/<pack id>.idx      what each pack holds: chunk id, offset, lengths, encoding (sealed)
//   trees/<tree id>          compressed tree objects (sealed)
//   snapshots/<id>.json      one small file per snapshot (sealed)
//
// Encrypted, the host sees only sealed bytes, random pack and snapshot names, and chunk and
// tree names that are keyed hashes (HMAC-SHA256), so it learns sizes and times, never names
// or content, and cannot alter, swap or truncate an object without `verify` and `restore`
// noticing (each seal is bound to the object's name).
//
// Crash safety: a pack is written under a temp name and renamed; a batch of packs is made
// durable (one sync) before their indexes are written, the same way. A chunk exists for the
// repository only once its index is durable, so kill -9 mid-save leaves at worst an unindexed
// pack (removed by prune) and the next save resends only what no index names. Trees and the
// snapshot file are written last.
#pragma once

#include "store/backend.hpp"
#include "store/chunker.hpp"
#include "store/crypto.hpp"
#include "store/objects.hpp"
#include "store/repo_store.hpp"
#include "util/result.hpp"

#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
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

// How a repository's key is found when it is opened (and made when it is created).
struct KeyOptions {
    // The master key itself (a machine saving directly is handed it on stdin).
    std::optional<MasterKey> key;
    // A key file to read (or, at creation, to write): JSON {"repo":id,"enc":..,"mac":..}.
    // Empty: $BERTH_REPO_KEY_FILE, else $XDG_CONFIG_HOME/berth/repo-keys/<repo id>.json.
    std::filesystem::path key_file;
    // The passphrase, asked for only when needed; nullopt: none is available.
    std::function<Result<std::optional<std::string>>(bool confirm)> passphrase;
    // At creation: encrypted (the default) or not.
    bool encrypt = true;
    // At creation: where the new key went (a key file path, or "passphrase").
    std::string *created_key = nullptr;
};

class Repository {
public:
    // Opens the repository the backend holds, creating it if `create`.
    static Result<std::unique_ptr<Repository>> open(std::unique_ptr<Backend> backend, bool create,
                                                    const KeyOptions &keys = {});
    // A directory (tests, the served side).
    static Result<std::unique_ptr<Repository>> open(const std::filesystem::path &root, bool create,
                                                    const KeyOptions &keys = {});
    ~Repository();

    // exclusive: save, forget, prune. shared: restore, verify, diff.
    Result<> lock(bool exclusive) { return m_backend->lock(exclusive); }

    std::string location() const { return m_backend->location(); }
    // The directory on this machine, when it is one (a save must not read its own repository).
    std::optional<std::filesystem::path> local_root() const { return m_backend->local_root(); }
    Backend &backend() { return *m_backend; }
    const std::string &id() const { return m_id; }
    ChunkerParams chunker() const { return m_chunker; }
    bool encrypted() const { return m_sealer.has_value(); }
    // How this repository names chunks and trees (what a save on a machine must use).
    const IdHasher &ids() const { return m_ids; }
    const std::optional<MasterKey> &master_key() const { return m_master; }
    int format_version() const { return m_sealer ? 2 : 1; }

    bool has(const ChunkId &id) const { return m_index.count(id) != 0; }
    std::size_t chunk_count() const { return m_index.size(); }
    std::vector<ChunkId> chunk_ids() const;

    // Adds a chunk (already compressed as `flags` says) to the pack being written.
    Result<> add(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                 std::string_view stored);
    // Adds a chunk given as plain bytes: compressed (when it pays) into the pack being
    // written. Returns the bytes stored.
    Result<std::size_t> add_plain(const ChunkId &id, std::string_view raw);
    // Writes the pending pack. Packs are made durable in batches (one sync), and only then get
    // their indexes; commit() finishes the last batch and makes the indexes durable.
    Result<> flush();
    Result<> commit();
    std::uint64_t stored_bytes_written() const { return m_written; }
    // How many written packs wait for one sync before their indexes (durable progress).
    void set_batch_packs(std::size_t n) { m_batch_packs = n ? n : 1; }

    // The chunk's plain bytes, checked against its id.
    Result<std::string> read(const ChunkId &id);
    // The order the next reads will come in (a restore's chunks): lets a remote repository
    // fetch neighbours together. Reads in another order still work, one request each.
    void plan_reads(std::vector<ChunkId> order) {
        m_plan = std::move(order);
        m_plan_pos = 0;
    }
    // The chunk as compressed (flags say how), opened and checked, for sending on.
    Result<std::pair<std::uint8_t, std::string>> read_stored(const ChunkId &id,
                                                             std::uint32_t &raw_len);

    Result<std::string> put_tree(const Tree &t);
    Result<Tree> get_tree(const std::string &id);
    Result<> put_snapshot(const Snapshot &s);
    // Every snapshot; fails naming the first damaged snapshot file.
    Result<std::vector<Snapshot>> snapshots();
    // Every snapshot file, good or damaged (for listing, verify and forget).
    SnapshotScan scan_snapshots();
    const std::vector<std::string> &damaged_indexes() const { return m_damaged; }
    // By id or unique id prefix, or "latest" (refused while any snapshot is unreadable).
    Result<Snapshot> find_snapshot(const std::string &ref);
    // Removes a snapshot by id or unique prefix (damaged ones too); returns its id.
    Result<std::string> forget(const std::string &ref);
    Result<VerifyReport> verify(const std::function<void(std::uint64_t)> &progress);
    Result<PruneReport> prune();

    // Key management (encrypted repositories): adds a passphrase; removes the one that opened
    // this repository (only when another way in remains).
    Result<std::string> add_passphrase(const std::string &passphrase);
    Result<> remove_key(const std::string &key_id);
    const std::string &opened_with() const { return m_opened_with; } // "keys/<id>" or a path
    Result<std::vector<std::string>> key_ids();

private:
    Repository() = default;
    Result<> load_index();
    Result<> sync_batch();
    Result<std::string> seal_file(std::string_view plain, const std::string &name) const;
    Result<std::string> open_file(std::string_view stored, const std::string &name) const;

    std::unique_ptr<Backend> m_backend;
    std::string m_id;
    ChunkerParams m_chunker;
    std::optional<MasterKey> m_master;
    std::optional<Sealer> m_sealer;
    IdHasher m_ids;
    std::string m_opened_with;
    std::vector<std::string> m_packs;
    std::vector<std::string> m_damaged;
    std::unordered_map<ChunkId, Location, ChunkIdHash> m_index;
    std::optional<std::set<std::string>> m_trees; // tree ids present (listed once, when asked)
    std::string m_pack_buf, m_scratch;
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
    std::uint64_t m_written = 0;
    std::size_t m_batch_packs = 8;
    // Over a network, chunks that will be read one after another (the plan) and lie one after
    // another in a pack are fetched in one request of up to 8 MiB instead of a round trip each.
    std::vector<ChunkId> m_plan;
    std::size_t m_plan_pos = 0;
    std::uint32_t m_window_pack = UINT32_MAX;
    std::uint64_t m_window_start = 0;
    std::string m_window;
    Result<std::string> read_planned(const ChunkId &id, const Location &l);
};

// The repository's default place: $XDG_DATA_HOME/berth/repo.
std::filesystem::path default_repo();
// Where a repository's key file is kept on this machine unless told otherwise.
std::filesystem::path default_key_file(const std::string &repo_id);

} // namespace berth::store
