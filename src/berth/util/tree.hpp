// Whole-tree operations for moving user data: copy with a running hash, digest, compare.
// A "tree" is a regular file, a symlink, or a directory and everything under it.
// FIFOs, sockets and device nodes carry no bytes: a copy recreates them (a device node needs
// root; without it the copy fails naming it). Hard links inside a copied tree stay hard links;
// a file with links outside the tree is copied once and named in CopyOptions::notes.
#pragma once

#include "util/result.hpp"

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <sys/types.h>
#include <vector>

namespace berth::tree {

namespace stdfs = std::filesystem;

enum class Kind { file, dir, symlink, other }; // other: FIFO, socket, device node

struct Entry {
    Kind kind = Kind::other;
    std::uint64_t size = 0;
    mode_t mode = 0;           // permission bits only
    std::string content;       // sha256 hex for files, target for symlinks, "fifo", "socket",
                               // "chr MAJ:MIN" or "blk MAJ:MIN" for the others
    std::int64_t mtime_ns = 0; // not compared: a copy keeps it, but only content counts
};

// Keyed by path relative to the tree root; the root itself is "".
using Digest = std::map<std::string, Entry>;

struct Stats {
    std::uint64_t files = 0, dirs = 0, symlinks = 0, bytes = 0;
    std::uint64_t disk = 0; // allocated bytes (st_blocks), what a quota counts
};

// Called between named steps of a copy; tests use it to crash at chosen points.
using StepHook = std::function<void(std::string_view step)>;
// Called as bytes are copied.
using ByteHook = std::function<void(std::uint64_t bytes)>;

struct CopyOptions {
    ByteHook on_bytes;
    StepHook on_step;
    bool preserve_owner = false;               // lchown to the source's uid/gid (root only)
    std::vector<std::string> *notes = nullptr; // what the copy could not keep as it was
};

// Counts what a copy would move. Fails on unreadable directories.
Result<Stats> stats(const stdfs::path &root);

// Hashes every file. Fails on unreadable entries.
Result<Digest> digest(const stdfs::path &root);

// Copies src to dst (which must not exist), keeping modes and mtimes, and makes it durable
// (syncfs of dst's file system) before returning. Returns the digest of what was read. If a source
// file changes while it is read, fails. On failure dst may be partial: the caller owns its cleanup.
Result<Digest> copy(const stdfs::path &src, const stdfs::path &dst, const CopyOptions &opt = {});

// Differences between two digests as readable lines ("a/b: content differs"), empty if equal.
// Entries of kind `other` compare by what they are (a FIFO must stay a FIFO).
std::vector<std::string> compare(const Digest &expected, const Digest &actual);

// Size and mtime of every entry, without reading content: a cheap "did it change" check.
Result<Digest> shallow(const stdfs::path &root);

// Removes a tree (rm -rf) after the caller has verified a copy exists. Fails with the path.
Result<> remove(const stdfs::path &root);

} // namespace berth::tree
