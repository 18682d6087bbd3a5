// The provider interface: what every backend (local, ssh, vast, paperspace, slurm) implements.
//
// To support a new provider, implement this class in provider/<name>/ and add one row to
// provider/registry.cpp. A provider only translates: calls become requests, responses become
// these types. It never prints, never retries, never touches the state database; the engine
// above it owns waiting, progress, retries, state transitions and money.
#pragma once

#include "agent/idle.hpp"
#include "util/result.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace berth {

// A machine one could rent: provider-neutral, so one query, one ranking and one cost model
// work across providers. Every provider fills these from its own answers.
struct Offer {
    std::string provider;
    std::string id;
    std::string gpu_name; // "RTX 4090"; "none" for a CPU-only host
    int gpu_count = 0;
    double vram_gb = 0;        // per GPU
    double price_per_hour = 0; // rent while running (dph_base; the minimum bid if a bid)
    double total_per_hour = 0; // rent + storage for the default disk (dph_total)
    double storage_per_gb_month = 0;
    double transfer_down_per_gb = 0, transfer_up_per_gb = 0;
    double dlperf = 0, dlperf_per_dollar = 0, reliability = 0, score = 0;
    double inet_down_mbps = 0, inet_up_mbps = 0;
    bool interruptible = false;
    double min_bid = 0;
    std::string location;
    nlohmann::json raw; // the provider's own fields, for --explain and --json

    // The offer in the query language's field names and units (gpu_ram in MB, as the vastai
    // CLI sends it), which is what a neutral filter is evaluated on and what sort keys read.
    nlohmann::json fields() const;
};

// Options a provider takes on the command line (`berth up --offer ...`) and in its config
// section (`[provider.vast] image = ...`); the CLI registers them, the provider reads them.
struct OptionSpec {
    std::string name;          // "offer" -> --offer, config provider.vast.offer
    std::string help;          // one line
    std::string default_value; // shown in --help; "" for none
    bool flag = false;         // takes no value
    bool config = true;        // also settable in [provider.NAME]
    bool everywhere = false;   // also on `offers`, `account` and `ls --reconcile` (credentials)
    bool internal = false;     // the provider's own, kept with a machine's record (its
                               // `remember`): never a flag or a config key
};
// Values given (flag, else config section), by option name.
using Options = std::map<std::string, std::string>;

// What a provider is, so the engine and the CLI ask questions instead of names.
struct Capabilities {
    bool billed = false;             // costs money: credit check, ledger, account
    bool stop_keeps_disk = true;     // stop keeps the machine's whole disk (else: ephemeral root)
    bool shared_volume = false;      // one persistent volume mounted in all its machines
    bool bootstrap_over_ssh = false; // machines come up bare: berth uploads its agent over SSH,
                                     // which starts Jupyter; else the provider starts Jupyter
    bool lists_machines = false;     // list() works: reconcile and interrupted-up recovery by label
    bool filters_offers = false;     // its search applies the query itself (else berth does)
    bool offers_need_credentials = false; // offers() fails without them
    bool can_stop = true; // stop and start (a Slurm job cannot be suspended and resumed: no)
    bool key_arrives_late = false;      // berth's key reaches the machine after it is ready (a
                                        // startup script): SSH refusing it is retried for a while
    std::string workdir = "/notebooks"; // the machine's kept work directory
    // What a destroy loses (paths on the machine, relative to /): the destroy guard counts
    // only these. What a stop keeps or loses is stop_keeps_disk.
    std::vector<std::string> destroy_loses;
    // How a machine stops itself at its deadline: "agent" (the machine's own PID 1 ends it)
    // or "api" (the agent asks the provider's API with the machine's own credential; see
    // Provider::self_stop).
    std::string self_stop = "agent";
    std::chrono::milliseconds poll_interval{1000}; // while waiting for a state change
    // Human lines: where the user's data lives, and what stop and destroy keep.
    std::string storage_note, stop_note, destroy_note;
};

// Everything a provider needs to rent: what the user said and what berth adds.
struct InstanceSpec {
    std::string name;
    double max_hours = 0; // 0: no auto-shutdown
    // Idle stop (agent/idle.hpp): the machine's watcher stops it after this long without
    // activity; 0: off.
    long idle_seconds = 0;
    idle::Thresholds idle_thresholds;
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
    // A virtual machine (the Paperspace replica makes them): its whole disk kept across stop
    // and start, a login user with sudo, sshd on this address and port.
    bool keep_disk = false;
    std::string user;
    std::string ssh_listen;
    int ssh_port = 0;
    // A machine on a host berth does not own (an SSH host, a Slurm cluster), set by the
    // provider's plan: reached with the user's own ssh config, keys and known_hosts (no pin of
    // berth's); its agent keeps its files in agent_dir (several machines share one home);
    // Jupyter is rooted at host_workdir; the store is host_store; host_link_home links the
    // home's persisted paths into it. Paths are absolute on the host.
    bool user_ssh = false;
    std::string agent_dir, host_workdir, host_store;
    bool host_link_home = false;
    // A machine reached through another host (a cluster's login node): its ssh destination,
    // with the user's own ssh config. The machine itself is reached with berth's key and pin.
    std::string ssh_jump;
    // Options the provider needs again for this machine after `up` (a cluster's login host for
    // `berth ls`'s recovery): kept with the record, given back to the provider each time.
    Options remember;
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
    // From list(), for `ls --reconcile`: what a recovered record's spec needs besides the label
    // (JSON with "host" and "options", as `up` records them), where the provider knows it.
    std::string spec_hint;
};

// The plan of a rental before anything is created: the spec, and what to tell the user.
struct UpPlan {
    InstanceSpec spec;
    std::vector<std::string> notes;    // "renting offer 123: 1 x RTX 4090, $0.35/h ..."
    std::vector<std::string> warnings; // "the planned 4 h would run the credit out"
};

// To support a new provider, implement this class in provider/<name>/ and add one row to
// provider/registry.cpp; nothing else in berth names a provider.
class Provider {
public:
    virtual ~Provider() = default;
    virtual std::string name() const = 0;
    virtual Capabilities capabilities() const = 0;
    // What this provider can rent now matching `filter` (a neutral filter from the query
    // language; providers that search server-side also get the wire body in `search`).
    virtual Result<std::vector<Offer>> offers(const nlohmann::json &search) = 0;
    // Turns `berth up` options into a spec: picks the offer, checks bids and credit. Nothing
    // is created. `spec` arrives with name, label, keys and max_hours filled.
    virtual Result<UpPlan> plan(InstanceSpec spec, const Options &opt) {
        (void)opt;
        return UpPlan{std::move(spec), {}, {}};
    }
    // Creates and boots a machine; returns once the provider accepted it (not when ready).
    virtual Result<MachineInfo> create(const InstanceSpec &spec) = 0;
    // The machine as the provider sees it now. A machine that no longer exists is `gone`.
    virtual Result<MachineInfo> describe(const std::string &id) = 0;
    virtual Result<> stop(const std::string &id) = 0;
    virtual Result<> start(const std::string &id) = 0;
    virtual Result<> destroy(const std::string &id) = 0;
    // Every machine this account has at the provider (reconcile, recovery of an interrupted
    // up). An answer that is not a list is an error, never "no machines".
    virtual Result<std::vector<MachineInfo>> list() {
        return fail(name() + " cannot list its machines");
    }
    // Lets one more public key log in to a running machine (after berth's own key was lost).
    // Where the capability `key_arrives_late` says so, the key arrives at the next boot.
    virtual Result<> attach_key(const std::string & /*id*/, const std::string & /*public_key*/) {
        return fail(name() + " cannot add a key to a running machine");
    }
    // A machine of several nodes (a Slurm allocation): node K's SSH endpoint, with the host
    // key to pin for it. Node 0 is the machine's own endpoint.
    virtual Result<SshEndpoint> node(const std::string & /*id*/, int k) {
        return fail(ErrorKind::user,
                    name() + " machines have one node; there is no node " + std::to_string(k), "",
                    2);
    }
    // Removes what `create` made for instance NAME besides the machine itself (a key script,
    // say), once an `up` is undone or the machine destroyed. Nothing it removes bills.
    virtual Result<> forget(const std::string & /*name*/) { return {}; }
    // `destroy --purge`: the persistent store machine `id` used, where it outlives the
    // machine (a directory on your own host). With check_only, says what would go ("HOST:PATH,
    // 12 MB"; "" when there is none) or refuses why it must stay (other machines use it, your
    // home links into it); else removes it. Providers without such a store refuse.
    virtual Result<std::string> purge_store(const std::string & /*id*/, bool /*check_only*/) {
        return fail(ErrorKind::user,
                    "--purge: " + name() + " keeps no store apart from its machines",
                    "destroy without --purge", 2);
    }
    // For machines bootstrapped over SSH: where the machine's watchdog asks to stop itself.
    virtual std::string api_url() const { return {}; }
    // Money: the account's credit in dollars, when the provider has one.
    virtual Result<std::optional<double>> credit() { return std::optional<double>{}; }
    // Whether the account may rent now, and why not, when the provider says (nullopt: it
    // does not say).
    struct Standing {
        bool good = true;
        std::string why;
    };
    virtual Result<std::optional<Standing>> standing() { return std::optional<Standing>{}; }
    // Use in resource-hours, for providers that account in them instead of dollars (a Slurm
    // cluster's sacct): berth's machines of the last `days` days. nullopt: not such a provider.
    struct UsageLine {
        std::string name, id, state; // the berth machine, the provider's id, its last state
        double start = 0, end = 0;   // epoch seconds; end 0: still running
        int nodes = 0, cpus = 0, gpus = 0;
        double hours(double now) const {
            double e = end > 0 ? end : now;
            return start > 0 && e > start ? (e - start) / 3600 : 0;
        }
    };
    struct Usage {
        std::string source; // "sacct", "sacct --completion"
        std::vector<UsageLine> lines;
    };
    virtual Result<std::optional<Usage>> usage(int /*days*/) { return std::optional<Usage>{}; }
    // Where a path of the machine is on this host, for providers whose disks are local
    // (lets the destroy guard look at a stopped machine). nullopt: only over SSH.
    virtual std::optional<std::filesystem::path> host_path(const std::string & /*id*/,
                                                           const std::string & /*path*/) {
        return std::nullopt;
    }
};

} // namespace berth
