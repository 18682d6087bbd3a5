// Talking to a machine over OpenSSH, the user's own ssh: their agent and ~/.ssh/config apply.
// berth adds its own key, a pinned known_hosts entry per instance (HostKeyAlias berth-NAME,
// so the pin holds whatever port the machine gets), and an ssh_config file that the user's
// ~/.ssh/config can Include, so `ssh berth-NAME` and VS Code Remote-SSH work.
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <filesystem>
#include <string>
#include <sys/types.h>
#include <vector>

namespace berth::ssh {

struct Target {
    std::string alias; // "berth-gpu1"
    std::string host;
    int port = 22;
    std::string user;
    // A host of the user's own (an ~/.ssh/config alias, ProxyJump, agent): reached with the
    // user's ssh config, keys and known_hosts, never berth's key or pins. Port 0 and an empty
    // user leave them to the user's config.
    bool user_ssh = false;
    // Reached through this host first (ssh -J), itself reached with the user's ssh config.
    std::string jump;
};

// The user's ssh config as berth follows it: $HOME/.ssh/config when $HOME is not the account's
// home (ssh itself reads the password database's), else nothing to add.
std::vector<std::string> user_config_args();

std::filesystem::path berth_dir();        // $XDG_DATA_HOME/berth
std::filesystem::path key_file();         // berth's own ed25519 key
std::filesystem::path known_hosts_file(); // pinned host keys (GitHub's too)
std::filesystem::path config_file();      // Host berth-NAME blocks

// Creates berth's key if missing; returns its public line.
Result<std::string> ensure_key();

// Pins `host_key` ("ssh-ed25519 AAAA...") for alias, replacing an earlier pin.
Result<> pin_host_key(const std::string &alias, const std::string &host_key);
Result<> unpin(const std::string &alias);

// `ssh` options that reach the target with berth's key and pinned host key.
std::vector<std::string> options(const Target &t);

// Rewrites berth's ssh_config with one Host block per target.
Result<> write_config(const std::vector<Target> &targets);

// Adds `Include <config_file>` to the top of user_config (~/.ssh/config) if absent.
// Returns true if it changed the file. The file is replaced atomically; its lines are kept.
Result<bool> install_include(const std::filesystem::path &user_config);

// Runs `ssh ... true` until it succeeds; retries "connection refused" with backoff while the
// machine boots (and "Permission denied" too when the key arrives late, by a startup script).
// Fails with ssh's own last line after the timeout.
Result<> wait_ready(const Target &t, std::chrono::seconds timeout, bool key_arrives_late = false);

// Starts `ssh -N -L 127.0.0.1:local_port:127.0.0.1:remote_port` detached; returns its pid once
// the local port accepts connections.
Result<pid_t> start_tunnel(const Target &t, int local_port, int remote_port);

// True if pid is alive and is an ssh process (not a recycled pid).
bool is_ssh_process(pid_t pid);

} // namespace berth::ssh
