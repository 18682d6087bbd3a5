// The repository a command works on, from --repo / config `repo` (see store/location.hpp).
#pragma once

#include "cli/context.hpp"
#include "engine/workspace.hpp"
#include "store/location.hpp"
#include "store/repository.hpp"

#include <memory>

namespace berth::cli {

// Opens (or, with create, makes) the repository; a bad location or an unreachable host ends
// the command with a clear error.
std::unique_ptr<store::RepoStore> open_repo(const std::string &spec, bool create);
Result<std::unique_ptr<store::RepoStore>> try_open_repo(const store::RepoLocation &loc,
                                                        bool create);
Result<std::unique_ptr<store::RepoStore>> try_open_repo(const store::RepoLocation &loc, bool create,
                                                        store::KeyOptions keys);
Result<std::unique_ptr<store::Backend>> open_backend(const store::RepoLocation &loc);

// The passphrase from BERTH_REPO_PASSWORD, BERTH_REPO_PASSWORD_FILE or
// BERTH_REPO_PASSWORD_COMMAND, else (may_ask) the terminal; never from argv. confirm: a new one,
// typed twice. nullopt: none to be had.
Result<std::optional<std::string>> repo_passphrase(bool confirm, bool may_ask);
// A new passphrase for `repo key add|passwd`: BERTH_REPO_NEW_PASSWORD(_FILE|_COMMAND) or asked
// twice on the terminal.
Result<std::string> repo_passphrase_new();
// Passphrases as above; a new repository gets one only from the environment unless ask_new
// (`repo init` on a terminal), else a key file.
store::KeyOptions key_options(bool ask_new);

// Lets machines save straight to an ssh:// repository: a key of their own (kept in
// $XDG_DATA_HOME/berth/machine-keys/) that the host's authorized_keys restricts to
// `repo serve --append-only PATH`, and the host's key as this laptop knows it. Returns what it did.
// For an s3: repository there is no key to make: the machines get the credentials of the AWS
// profile `profile` (default "berth-machines"), read at each save.
Result<std::string> allow_machines(const store::RepoLocation &loc,
                                   const std::string &authorized_keys,
                                   const std::string &profile = "");
// What a machine needs to save to loc directly, if allow_machines was run for it.
std::optional<DirectSave> machine_access(const store::RepoLocation &loc);
// The repository's key for a machine-direct request (it travels on the machine's stdin): from
// the key file here when there is one, so the laptop need not reach the host; else from `open`
// or from opening the repository (a passphrase). Nothing for an unencrypted repository.
void fill_direct_key(DirectSave &d, const std::string &spec, store::RepoStore *open = nullptr);

} // namespace berth::cli
