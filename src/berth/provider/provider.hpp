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
#include <utility>
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
    // What a rented machine is made of; a provider maps what it can and ignores the rest.
    std::string image;         // container image (vast: fastdotai/fastai-course by default)
    double disk_gb = 0;        // 0: the provider's default
    std::optional<double> bid; // interruptible bid, $/h for the whole offer; none: on-demand
    std::string label;         // the provider-side label ("berth:NAME"), for reconcile
    std::string onstart;       // a script the machine runs at every boot
    std::vector<std::pair<std::string, std::string>> env; // the machine's environment
    // The shape of a local machine (the replica makes Vast-like ones): whether its agent
    // starts Jupyter itself, where the instance's kept directory is mounted, and whether the
    // shared store is mounted at /storage.
    bool jupyter = true;
    std::string workdir = "/notebooks";
    bool storage = true;
    bool install_berth = true; // a rented machine has no berth until the client uploads it
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
    int jupyter_port = 0; // on the machine's loopback; 0: berth starts Jupyter over SSH
    std::string jupyter_token;
    std::string label;
    // Money as the provider states it (0 for a local machine): what berth's ledger meters.
    double rent_per_hour = 0;    // while running
    double storage_per_hour = 0; // while the machine exists, stopped included
    double created_at = 0;       // epoch seconds, the provider's clock
    double running_since = 0;    // epoch seconds; 0 unless running
    bool interruptible = false;
    double transfer_cost = 0; // dollars of transfer so far (the provider's byte counts)
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
    // Every machine this account has at the provider (for `berth ls --reconcile`). An answer
    // that is not a list is an error, never "no machines".
    virtual Result<std::vector<MachineInfo>> list() {
        return fail(name() + " cannot list its machines");
    }
    // Lets one more public key log in to a running machine (after berth's own key was lost).
    virtual Result<> attach_key(const std::string & /*id*/, const std::string & /*public_key*/) {
        return fail(name() + " cannot add a key to a running machine");
    }
    // For machines berth bootstraps over SSH: the kept work directory, and the API the
    // machine's watchdog calls to stop itself.
    virtual std::string workdir() const { return "/notebooks"; }
    virtual std::string api_url() const { return {}; }
    // Money: the account's credit in dollars, when the provider has one.
    virtual Result<std::optional<double>> credit() { return std::optional<double>{}; }
    // Where a path of the machine is on this host, for providers whose disks are local
    // (lets the destroy guard look at a stopped machine). nullopt: only over SSH.
    virtual std::optional<std::filesystem::path> host_path(const std::string & /*id*/,
                                                           const std::string & /*path*/) {
        return std::nullopt;
    }
};

struct ProviderOptions {
    std::string api_key; // --api-key; else the provider's own environment variable or file
};

// The provider named `name`, or an error listing the known ones.
Result<std::unique_ptr<Provider>> make_provider(const std::string &name,
                                                const ProviderOptions &opt = {});

} // namespace berth
