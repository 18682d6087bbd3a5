// berth persist: the operations behind `persist init|add|remove|restore|status`.
// Every operation takes the store's lock; none prints (reports come back as values).
#pragma once

#include "agent/manifest.hpp"
#include "agent/migrate.hpp"
#include "agent/store.hpp"

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace berth {

struct ItemOutcome {
    LinkReport report;
    std::string error; // non-empty if this item failed (the others still ran)
};

struct PersistRun {
    std::vector<ItemOutcome> items;
    std::size_t ssh_fixed = 0; // files whose SSH permissions were corrected
    double seconds = 0;
    bool ok() const;
};

// Creates the store layout, adds the default set (and `extra`) to the manifest, links each.
Result<PersistRun> persist_init(const Store &store, const std::filesystem::path &home,
                                MigrationObserver &obs);

// Adds one path. kind is used only when neither $HOME nor the store has the path yet.
Result<LinkReport> persist_add(const Store &store, const std::filesystem::path &home,
                               const std::string &path, ItemKind kind, MigrationObserver &obs);

// Copies the store's copy back into $HOME and drops the path from the manifest.
Result<UnlinkReport> persist_remove(const Store &store, const std::filesystem::path &home,
                                    const std::string &path, bool purge, MigrationObserver &obs);

// The boot hook: links every manifest path, finishes interrupted migrations, fixes SSH
// permissions. Idempotent. Waits up to lock_wait for another berth.
Result<PersistRun> persist_restore(const Store &store, const std::filesystem::path &home,
                                   MigrationObserver &obs, std::chrono::milliseconds lock_wait);

enum class ItemState {
    linked,       // ~/X -> store copy
    not_linked,   // ~/X missing; restore will link it
    drifted,      // ~/X re-created as a real file or directory (an installer replaced the link)
    foreign_link, // ~/X links somewhere else
    dangling,     // ~/X links to nothing
    store_missing // linked, but the store lacks the copy
};

const char *state_name(ItemState s);

struct ItemStatus {
    Item item;
    ItemState state = ItemState::linked;
    std::uint64_t store_bytes = 0; // allocated size of the store's copy
    std::uint64_t home_bytes = 0;  // allocated size of a drifted real copy
    std::string detail;
};

struct StoreStatus {
    Store store;
    std::vector<ItemStatus> items;
    std::uint64_t store_total = 0; // the whole store, as a quota counts it
    std::size_t pending_journals = 0;
};

Result<StoreStatus> persist_status(const Store &store, const std::filesystem::path &home);

} // namespace berth
