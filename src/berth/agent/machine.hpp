// A local ephemeral machine, from the inside: `berth agent boot --instance DIR`.
//
// The agent enters new mount, UTS and PID namespaces and becomes PID 1 there. It builds the
// machine's root as an overlay whose lower layer is the host's / and whose upper layer is a
// tmpfs (so everything written outside the persistent mounts is discarded at stop), mounts a
// fresh /proc, /tmp, /run and an empty $HOME, binds the shared store at /storage and the
// instance's own directory at /notebooks, chroots, and then:
//   1. restores persistence (persist init on a new store, persist restore otherwise);
//   2. starts OpenSSH sshd on a free 127.0.0.1 port with the instance's pinned host key;
//   3. starts Jupyter on another loopback port, --no-browser, with a token, in /notebooks;
//   4. supervises both (restarting what dies) until SIGTERM or the --max-hours deadline,
//      when it stops its own machine, with no client anywhere.
// Its state goes to DIR/machine.json, which the local provider reads.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace berth {

// Instance directory layout shared by the agent and the local provider.
struct InstanceDir {
    std::filesystem::path root;
    std::filesystem::path spec() const { return root / "spec.json"; }
    std::filesystem::path machine() const { return root / "machine.json"; }
    std::filesystem::path pid_file() const { return root / "agent.pid"; }
    std::filesystem::path log() const { return root / "agent.log"; }
    std::filesystem::path host_key() const { return root / "ssh_host_ed25519_key"; }
    std::filesystem::path authorized_keys() const { return root / "authorized_keys"; }
    std::filesystem::path notebooks() const { return root / "notebooks"; }
    std::filesystem::path mnt() const { return root / "mnt"; }
};

// The command line that serves Jupyter on 127.0.0.1:port, rooted at dir; empty when no
// Jupyter is installed. The token is not on it (any local user reads command lines with
// `ps`): the caller puts it in the child's environment as JUPYTER_TOKEN, which only the
// process's own user can read.
std::vector<std::string> jupyter_command(int port, const std::string &dir);

// Runs the machine; returns the process exit code. `store` is the host directory mounted at
// /storage.
int run_machine_agent(const InstanceDir &dir, const std::filesystem::path &store);

} // namespace berth
