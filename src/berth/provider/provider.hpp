// The provider interface: what every backend (local, ssh, vast, paperspace, slurm) implements.
//
// To support a new provider, implement this class in provider/<name>/ and add one row to
// provider/registry.cpp. A provider only translates: calls become requests, responses become
// these types. It never prints, never retries, never touches the state database; the engine
// above it owns waiting, progress, retries, state transitions and money.
#pragma once

#include "util/result.hpp"

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace berth {

// A machine one could rent: provider-neutral, so one ranking works across providers.
struct Offer {
    std::string provider;
    std::string id;
    std::string gpu_name; // "RTX 4090"; "none" for a CPU-only host
    int gpu_count = 0;
    double vram_gb = 0; // per GPU
    double price_per_hour = 0;
    std::string location;
};

struct InstanceSpec {
    std::string name;
    double max_hours = 0; // 0: no auto-shutdown
    std::string offer_id;
    std::string authorized_keys; // public keys allowed to log in (berth's own, at least)
};

struct SshEndpoint {
    std::string host;
    int port = 0;
    std::string user;
    std::string host_key; // "ssh-ed25519 AAAA..." when the provider knows it
};

enum class MachineState { provisioning, loading, running, stopped, exited, gone };

const char *machine_state_name(MachineState s);

struct MachineInfo {
    std::string id;
    MachineState state = MachineState::provisioning;
    std::string message; // the provider's own words ("restarting sshd", "max-hours reached")
    SshEndpoint ssh;
    int jupyter_port = 0; // on the machine's loopback
    std::string jupyter_token;
};

class Provider {
public:
    virtual ~Provider() = default;
    virtual std::string name() const = 0;
    // What this provider can rent now.
    virtual Result<std::vector<Offer>> offers() = 0;
    // Creates and boots a machine; returns once the provider accepted it (not when ready).
    virtual Result<MachineInfo> create(const InstanceSpec &spec) = 0;
    // The machine as the provider sees it now. A machine that no longer exists is `gone`.
    virtual Result<MachineInfo> describe(const std::string &id) = 0;
    virtual Result<> stop(const std::string &id) = 0;
    virtual Result<> start(const std::string &id) = 0;
    virtual Result<> destroy(const std::string &id) = 0;
    // Where a path of the machine is on this host, for providers whose disks are local
    // (lets the destroy guard look at a stopped machine). nullopt: only over SSH.
    virtual std::optional<std::filesystem::path> host_path(const std::string & /*id*/,
                                                           const std::string & /*path*/) {
        return std::nullopt;
    }
};

// The provider named `name`, or an error listing the known ones.
Result<std::unique_ptr<Provider>> make_provider(const std::string &name);

} // namespace berth
