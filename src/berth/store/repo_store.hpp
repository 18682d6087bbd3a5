// What save, restore and the listing commands report about a repository.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "store/objects.hpp"

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

class Repository;
using RepoStore = Repository; // the one repository type; where it lives is its Backend

} // namespace berth::store
