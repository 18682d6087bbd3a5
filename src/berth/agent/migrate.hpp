// Moving one persisted path between $HOME and the store without ever losing a byte.
//
// The rule is move, verify, then remove:
//   1. copy ~/X into the store under a temp name (<store>/cfg/.X.berth-incoming), fsync;
//   2. re-read the copy and compare every file's SHA-256 with what was read from ~/X;
//   3. rename the copy to <store>/cfg/X (atomic: the store now holds a complete X);
//   4. rename ~/X aside to ~/.X.berth-old, put the symlink ~/X -> <store>/cfg/X in its place;
//   5. check ~/.X.berth-old did not change since it was read, then remove it.
// When the store already has X (another machine put it there, or the image ships ~/.config),
// step 1-3 become a merge: files the store lacks are copied in the same way; where both have a
// file and they differ, the store's wins and ours is kept in <store>/cfg/.conflicts/<ts>/X.
// kill -9 at any instant leaves every byte in one complete place (~/X, the store, or
// ~/.X.berth-old), and the next run finishes the job: leftovers are recognised by their names.
#pragma once

#include "agent/manifest.hpp"
#include "agent/store.hpp"

#include <cstdint>
#include <filesystem>
#include <string>

namespace berth {

// How the engine learns about slow work; the command line draws it.
class MigrationObserver {
public:
    virtual ~MigrationObserver() = default;
    virtual void copy_started(const std::string & /*path*/, std::uint64_t /*bytes*/) {}
    virtual void copied(std::uint64_t /*bytes*/) {}
    virtual void copy_finished() {}
};

enum class LinkAction {
    linked,       // was already a link to the store
    created,      // nothing anywhere: created empty in the store and linked
    restored,     // ~/X was missing; linked to the store's copy
    migrated,     // ~/X moved into the store
    merged,       // ~/X merged into the store's existing copy
    repaired,     // a dangling or stale link replaced
    recovered,    // finished an interrupted migration
    foreign_link, // ~/X is a symlink to somewhere else: left alone
};

const char *action_name(LinkAction a);

struct LinkReport {
    std::string path;
    LinkAction action = LinkAction::linked;
    std::uint64_t bytes_moved = 0;
    std::size_t conflicts = 0;
    std::string conflicts_dir; // where conflicting files were kept, if any
    std::string note;
};

struct UnlinkReport {
    std::string path;
    std::uint64_t bytes = 0;
    std::string store_copy; // where the store's copy went (empty if purged)
};

class Migrator {
public:
    Migrator(const Store &store, std::filesystem::path home, MigrationObserver &obs);

    // Makes ~/item a symlink to the store's copy, moving in whatever is at ~/item first.
    // Fails (with nothing lost) on I/O errors, a full store, or a symlink loop.
    Result<LinkReport> link(const Item &item);

    // The reverse: copies the store's copy back to ~/item (a real file or directory again),
    // then moves the store's copy to <store>/cfg/.removed/<ts>/ (or deletes it with purge,
    // after checking the copy in $HOME is identical).
    Result<UnlinkReport> unlink(const Item &item, bool purge);

private:
    struct Paths;
    Paths paths_for(const Item &item) const;
    Result<std::string> journal_begin(const Item &item, const char *op);
    void journal_end(const Item &item);
    Result<> recover(const Item &item, const Paths &p, const std::string &ts, LinkReport &rep);
    Result<> move_in(const std::filesystem::path &src, const std::filesystem::path &dst,
                     LinkReport &rep);
    Result<> merge(const std::filesystem::path &src, const std::filesystem::path &dst,
                   const std::filesystem::path &conflicts, LinkReport &rep);
    Result<> merge_entry(const std::filesystem::path &src, const std::filesystem::path &dst,
                         const std::filesystem::path &conflicts, const std::string &rel,
                         LinkReport &rep);
    Result<> copy_verified(const std::filesystem::path &src, const std::filesystem::path &dst,
                           LinkReport &rep);
    Result<> swap_in_link(const Item &item, const Paths &p, const std::string &ts, LinkReport &rep);
    Result<> check_space(const std::filesystem::path &src, const std::filesystem::path &dst_dir);

    const Store &m_store;
    std::filesystem::path m_home;
    MigrationObserver &m_obs;
};

} // namespace berth
