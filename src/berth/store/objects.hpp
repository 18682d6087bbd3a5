// What a snapshot is made of. A chunk is addressed by the SHA-256 of its plain bytes. A tree is
// the list of every entry in the snapshot with its chunks, serialized in a compact binary form
// and stored compressed under its own SHA-256 (so an unchanged workspace yields the same tree
// and costs nothing to store again). A snapshot is a small JSON file naming its tree.
#pragma once

#include "util/result.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace berth::store {

using ChunkId = std::array<std::uint8_t, 32>;

std::string to_hex(const ChunkId &id);
Result<ChunkId> from_hex(const std::string &hex);
ChunkId sha256_id(const void *data, std::size_t n);

enum class EntryType : std::uint8_t { file = 0, dir = 1, symlink = 2 };

struct Entry {
    std::string path; // relative to the tree root, '/'-separated, never empty, no '..'
    EntryType type = EntryType::file;
    std::uint32_t mode = 0;
    std::int64_t mtime_ns = 0;
    std::uint64_t size = 0;
    std::uint32_t uid = 0, gid = 0;
    std::string target; // symlinks
    std::vector<ChunkId> chunks;
};

struct Tree {
    std::vector<Entry> entries; // sorted by path
};

std::string serialize(const Tree &t);
Result<Tree> parse_tree(const std::string &bytes);

struct Snapshot {
    std::string id;   // 16 hex chars
    std::string time; // ISO 8601 UTC
    std::string host;
    std::string source; // "gpu1:/notebooks,/storage/cfg" or "/home/ana/work"
    std::vector<std::string> paths;
    std::string tree;   // tree id (hex)
    std::string parent; // snapshot id or ""
    std::uint64_t files = 0, bytes = 0, new_bytes = 0, stored_bytes = 0;
    std::string instance, provider; // the machine it was saved from ("" for a directory)
};

std::string snapshot_json(const Snapshot &s);
// Validates every field (ids are hex of the right length) before anything uses them.
Result<Snapshot> parse_snapshot(const std::string &json);
bool is_hex(const std::string &s, std::size_t len);

// Validates a path from a tree before anything is written with it: relative, no empty, '.'
// or '..' components. Fails naming the path.
Result<> check_entry_path(const std::string &path);

} // namespace berth::store
