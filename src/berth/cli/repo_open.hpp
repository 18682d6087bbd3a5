// The repository a command works on, from --repo / config `repo` (see store/location.hpp).
#pragma once

#include "cli/context.hpp"
#include "store/location.hpp"
#include "store/repo_store.hpp"

#include <memory>

namespace berth::cli {

// Opens (or, with create, makes) the repository; a bad location or an unreachable host ends
// the command with a clear error.
std::unique_ptr<store::RepoStore> open_repo(const std::string &spec, bool create);
Result<std::unique_ptr<store::RepoStore>> try_open_repo(const store::RepoLocation &loc,
                                                        bool create);

} // namespace berth::cli
