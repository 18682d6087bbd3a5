// Saving and restoring trees of files: the part that runs where the files are (the agent on
// a rented machine, or in-process for a local directory).
//
// A save walks the paths, and for each file whose size, mtime and inode match the parent
// snapshot (inodes come from a cache this machine wrote at its last save or restore), reuses
// the parent's chunk list without reading a byte. Other files are read once, cut into
// content-defined chunks, hashed, and only chunks the repository lacks are compressed and
// handed to the sink. The sink is the repository itself, or a stream to it over SSH.
#pragma once

#include "store/chunker.hpp"
#include "store/crypto.hpp"
#include "store/objects.hpp"

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace berth::store {

class SaveSink {
public:
    virtual ~SaveSink() = default;
    virtual bool has(const ChunkId &id) = 0;
    // A chunk, already in its stored form (compressed or raw as flags say).
    virtual Result<> chunk(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                           std::string_view stored) = 0;
    // A chunk the repository lacks, as plain bytes. The default compresses it here and calls
    // chunk(); a sink may do that on another thread (the walker keeps reading meanwhile).
    virtual Result<> new_chunk(const ChunkId &id, std::string_view raw);
    // Waits for work in flight; returns its first failure.
    virtual Result<> finish() { return {}; }
    std::uint64_t stored_bytes() const { return m_stored; }
    virtual Result<> entry(const Entry &e) = 0;
    // Whether the sink draws progress against a total (costs a stat walk before the save).
    virtual bool wants_total() const { return false; }
    virtual void total(std::uint64_t /*bytes*/, std::uint64_t /*files*/) {}
    virtual void progress(std::uint64_t /*bytes_done*/) {}

protected:
    std::atomic<std::uint64_t> m_stored{0};
};

struct SaveStats {
    std::uint64_t files = 0, dirs = 0, bytes = 0; // what the snapshot holds
    std::uint64_t bytes_read = 0, files_read = 0; // what had to be read
    std::uint64_t new_chunks = 0, new_bytes = 0;  // raw bytes the repository lacked
    std::uint64_t stored_bytes = 0;               // their size as stored (compressed)
    std::string tree_id;                          // computed from the sorted entries
};

struct SaveOptions {
    std::filesystem::path root;     // "/" or a directory
    std::vector<std::string> paths; // relative to root; empty: root itself
    const Tree *parent = nullptr;   // the previous snapshot of the same source
    std::string parent_tree_id;
    ChunkerParams chunker;
    std::filesystem::path cache_file; // path -> inode map for unchanged detection
    IdHasher ids;                     // how the repository names chunks and trees
};

// Walks, chunks and feeds the sink; writes the inode cache for the new tree at the end.
Result<SaveStats> save_tree(const SaveOptions &opt, SaveSink &sink);

// Sorts entries, checks paths and symlinks: nothing in a tree may point outside its root.
Result<Tree> finish_tree(std::vector<Entry> entries);
Result<> check_tree(const Tree &t);

// Fetches a chunk's plain bytes (from the repository, or from a stream).
using ChunkSource = std::function<Result<std::string>(const ChunkId &)>;

struct RestoreStats {
    std::uint64_t files = 0, dirs = 0, symlinks = 0, bytes = 0;
};

// Writes the tree under target: each file through a temp name, every chunk checked against its
// id, modes and mtimes kept, symlinks last. Refuses unsafe trees before writing anything.
// Writes the inode cache so the next save from target reads nothing unchanged.
Result<RestoreStats> restore_tree(const Tree &t, const std::string &tree_id,
                                  const std::filesystem::path &target, const ChunkSource &source,
                                  const std::filesystem::path &cache_file,
                                  const std::function<void(std::uint64_t)> &progress);

// Where this machine keeps inode caches: /storage/.berth/cache on a machine with a store,
// else $XDG_CACHE_HOME/berth.
std::filesystem::path cache_dir();
std::filesystem::path cache_file_for(const std::string &repo_id, const std::filesystem::path &root,
                                     const std::vector<std::string> &paths);

} // namespace berth::store
