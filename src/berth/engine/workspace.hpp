// Saving and restoring work: a local directory in-process, an instance through its agent over
// one SSH connection. Also the destroy guard: what an instance holds that no snapshot has.
#pragma once

#include "provider/provider.hpp"
#include "state/state.hpp"
#include "store/repository.hpp"
#include "store/save.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace berth {

struct SaveResult {
    store::Snapshot snapshot;
    store::SaveStats stats;
    bool tree_unchanged = false;
};

// The command line that runs `berth ARGS...` on a machine over SSH (BatchMode, pinned key).
std::vector<std::string> remote_berth(const InstanceRecord &r,
                                      const std::vector<std::string> &args);

// What the default save of an instance covers: its work and its persisted environment.
std::vector<std::string> default_instance_paths(const Capabilities &caps);

// Sizes and mtimes (no contents) of root/<path> for each path, entries named relative to root.
Result<std::vector<store::Entry>> scan_here(const std::filesystem::path &root,
                                            const std::vector<std::string> &paths);

Result<SaveResult> save_directory(store::RepoStore &repo, const std::filesystem::path &dir,
                                  bool progress);
// With no paths: what the provider's capabilities say a save of its machine covers.
Result<SaveResult> save_instance(store::RepoStore &repo, const InstanceRecord &r,
                                 const Capabilities &caps, std::vector<std::string> paths,
                                 bool progress);

Result<store::RestoreStats> restore_directory(store::RepoStore &repo, const store::Snapshot &s,
                                              const std::filesystem::path &dir, bool progress);
// Restores onto NAME under `target` ("/" puts every path back where it was saved from).
Result<store::RestoreStats> restore_instance(store::RepoStore &repo, const store::Snapshot &s,
                                             const InstanceRecord &r, const std::string &target,
                                             bool progress);

struct Unsaved {
    bool never_saved = false;
    std::vector<std::string> changed; // paths new or different since the last snapshot
    std::uint64_t bytes = 0;
};

// Compares what the instance holds now (sizes and mtimes) with its latest snapshot.
// repo may be null (no repository yet: nothing was ever saved).
// Only paths the provider's destroy loses count (capabilities().destroy_loses).
// A save the machine does itself, straight to an SSH repository (the laptop only starts it).
// The client hands this to `berth agent save-direct` on the machine's stdin, never argv: a
// key the host restricts to `repo serve --append-only PATH`, and the host's key to trust.
struct DirectSave {
    std::string host, user; // as the machine reaches it (ssh -G's hostname, user)
    int port = 22;
    std::string location;           // ssh://... as the user named it (for messages)
    std::string key;                // the private key's text
    std::string known_hosts;        // known_hosts lines for host
    std::vector<std::string> paths; // relative to /
    std::string instance, provider;
    std::string repo_key;         // the repository's master key (JSON), when it is encrypted
    std::string repo_id;          // the laptop's note of which repository (to find its key file)
    std::string snapshot, target; // a restore: which snapshot, and where on the machine
    // An S3 repository instead of SSH: the credentials for machines (JSON key, secret, token,
    // region), from the AWS profile `repo allow-machines --profile` named.
    std::string s3, s3_profile;
};
nlohmann::json direct_save_json(const DirectSave &d);
Result<DirectSave> parse_direct_save(const std::string &line);
// On the machine: connect, save, snapshot; nothing of the key stays afterwards.
Result<SaveResult> save_direct_here(const DirectSave &d);
// On the laptop: starts that on the instance and reads its result.
Result<SaveResult> save_instance_direct(DirectSave d, const InstanceRecord &r,
                                        const Capabilities &caps, std::vector<std::string> paths);

// A new machine gets a snapshot's work and environment (up --from): the files back where they
// were saved from, then the persisted environment linked into $HOME again.
Result<store::RestoreStats> restore_onto_new(store::RepoStore &repo, const store::Snapshot &s,
                                             const InstanceRecord &r, const Capabilities &caps,
                                             bool progress, const DirectSave *direct = nullptr);
// A restore the machine does itself from an ssh:// repository (allow-machines run for it).
Result<store::RestoreStats> restore_direct_here(const DirectSave &d);
Result<store::RestoreStats> restore_instance_direct(DirectSave d, const InstanceRecord &r,
                                                    const store::Snapshot &s,
                                                    const std::string &target,
                                                    const store::RepoStore *repo = nullptr);

Result<Unsaved> unsaved_work(store::RepoStore *repo, const InstanceRecord &r, Provider &p);

// "up to N paths, and M more"
std::string describe_unsaved(const Unsaved &u);

} // namespace berth
