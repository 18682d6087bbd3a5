// File system primitives that never lose data: temp-name writes, fsync, rename.
#pragma once

#include "util/result.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <sys/stat.h>

namespace berth::fs {

namespace stdfs = std::filesystem;

// lstat(2), or nullopt when the path does not exist. Other errors become Errors.
Result<std::optional<struct stat>> lstat_opt(const stdfs::path &p);

// Reads a whole file. Fails with the path and errno text.
Result<std::string> read_file(const stdfs::path &p);

// Writes content to a temp name beside p, fsyncs it, renames it over p and fsyncs the
// directory. On failure p is untouched and the temp file is removed.
// durable=false skips both fsyncs, for callers that make a batch durable with one syncfs.
Result<> write_file_atomic(const stdfs::path &p, std::string_view content, mode_t mode = 0644,
                           bool durable = true);

// fsync of a directory, so a rename in it is durable.
Result<> fsync_dir(const stdfs::path &dir);

// mkdir -p with a mode for the directories it creates.
Result<> make_dirs(const stdfs::path &dir, mode_t mode = 0755);

// Creates (or replaces) a symlink at link -> target atomically: a temp link, then rename.
// Refuses to replace anything but a symlink. durable: fsync the directory afterwards (not
// needed in an ephemeral $HOME, where a crash loses the directory anyway).
Result<> symlink_atomic(const stdfs::path &target, const stdfs::path &link, bool durable = true);

// True if the directory's file system accepts a new file (probes with a temp file).
Result<> probe_writable(const stdfs::path &dir);

// Free bytes for an unprivileged writer on the file system holding dir.
Result<std::uint64_t> free_bytes(const stdfs::path &dir);

// A name for a sibling temp file: "<dir>/.<name>.berth-tmp-<pid>-<n>".
stdfs::path temp_sibling(const stdfs::path &p, std::string_view tag = "tmp");

// "~/x" style display of a path under home.
std::string display(const stdfs::path &p, const stdfs::path &home);

// Lexically normal absolute path (no symlink resolution).
stdfs::path absolute_normal(const stdfs::path &p);

// True if child is base or lies under base (lexically).
bool is_within(const stdfs::path &child, const stdfs::path &base);

} // namespace berth::fs
