// What berth needs of a repository, wherever it is: a directory here (Repository), or one on
// another host reached over SSH (RemoteRepository, speaking to `berth repo serve` there).
// Save, restore and the listing commands take this interface and never ask where.
#pragma once

#include "store/chunker.hpp"
#include "store/objects.hpp"
#include "util/result.hpp"

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace berth::store {

struct VerifyReport {
    std::uint64_t chunks = 0, bytes = 0, trees = 0, snapshots = 0;
    std::vector<std::string> problems;
};

// Snapshot files as read: the good ones, and the damaged ones (file stem, reason).
struct SnapshotScan {
    std::vector<Snapshot> good;
    std::vector<std::pair<std::string, std::string>> damaged;
};

struct PruneReport {
    std::uint64_t packs_removed = 0, bytes_freed = 0, orphan_packs = 0, unused_bytes_kept = 0;
};

class RepoStore {
public:
    virtual ~RepoStore() = default;
    // Where it is, for messages: a path, or ssh://host/path.
    virtual std::string location() const = 0;
    // The directory on this machine, when it is one (a save must not read its own repository).
    virtual std::optional<std::filesystem::path> local_root() const { return std::nullopt; }
    virtual const std::string &id() const = 0;
    virtual ChunkerParams chunker() const = 0;

    // exclusive: save, forget, prune. shared: restore, verify, diff.
    virtual Result<> lock(bool exclusive) = 0;
    virtual std::vector<ChunkId> chunk_ids() const = 0;
    // A chunk in stored form (compressed or raw as flags say); a chunk it has is skipped.
    virtual Result<> add(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                         std::string_view stored) = 0;
    // A chunk as plain bytes; the default compresses it and calls add(). Returns bytes stored.
    virtual Result<std::size_t> add_plain(const ChunkId &id, std::string_view raw);
    // Makes what was added durable (and reports the first failure of any add).
    virtual Result<> commit() = 0;
    // The chunk's plain bytes, checked against its id (the default: read_stored, decompressed).
    virtual Result<std::string> read(const ChunkId &id);
    // The chunk as stored, for sending; the receiver checks the hash.
    virtual Result<std::pair<std::uint8_t, std::string>> read_stored(const ChunkId &id,
                                                                     std::uint32_t &raw_len) = 0;
    virtual Result<std::string> put_tree(const Tree &t) = 0;
    virtual Result<Tree> get_tree(const std::string &id) = 0;
    virtual Result<> put_snapshot(const Snapshot &s) = 0;
    // Every snapshot file, good or damaged (for listing, verify and forget).
    virtual SnapshotScan scan_snapshots() = 0;
    // By id or unique id prefix, or "latest" (refused while any snapshot is unreadable).
    virtual Result<Snapshot> find_snapshot(const std::string &ref) = 0;
    // Removes a snapshot by id or unique prefix (damaged ones too); returns its id.
    virtual Result<std::string> forget(const std::string &ref) = 0;
    virtual Result<VerifyReport> verify(const std::function<void(std::uint64_t)> &progress) = 0;
    virtual Result<PruneReport> prune() = 0;
};

} // namespace berth::store
