// The persistent store: the one directory on a rented machine that outlives it.
//
// Layout (compatible with fastai's paperspace-setup, which links ~/.X to /storage/cfg/.X):
//   <root>/cfg/<path>           the persisted files and directories, linked from $HOME
//   <root>/cfg/.conflicts/<ts>/ what lost a merge (the store's copy wins; nothing is dropped)
//   <root>/cfg/.removed/<ts>/   store copies of paths un-persisted without --purge
//   <root>/.berth/manifest.json what is persisted
//   <root>/.berth/journal/      intents of migrations in progress (crash recovery)
//   <root>/.berth/lock          one berth at a time per store
//   <root>/.berth/log/          details behind the one-line summaries
//   <root>/.berth/bin/berth     the static berth the boot hook runs
#pragma once

#include "core/config.hpp"
#include "util/result.hpp"

#include <filesystem>
#include <string>

namespace berth {

struct Store {
    std::filesystem::path root;

    std::filesystem::path cfg() const { return root / "cfg"; }
    std::filesystem::path meta() const { return root / ".berth"; }
    std::filesystem::path manifest() const { return meta() / "manifest.json"; }
    std::filesystem::path journal_dir() const { return meta() / "journal"; }
    std::filesystem::path lock_file() const { return meta() / "lock"; }
    std::filesystem::path log_file() const { return meta() / "log" / "berth.log"; }
    std::filesystem::path bin() const { return meta() / "bin" / "berth"; }
    std::filesystem::path conflicts() const { return cfg() / ".conflicts"; }
    std::filesystem::path removed() const { return cfg() / ".removed"; }

    // Creates the layout; fails if the root is missing or not writable, saying what to do.
    Result<> prepare() const;

    // Appends a timestamped line to the log; never fails the caller.
    void log(const std::string &line) const;
};

// Where the store is: an explicit path (flag or config `store`), else /storage when it exists
// (Paperspace Gradient). `probe_root` lets tests stand in for "/".
Result<Store> find_store(const std::string &configured,
                         const std::filesystem::path &probe_root = "/");

// "2026-11-21T23-59-01Z": a timestamp usable as a directory name.
std::string timestamp_name();

} // namespace berth
