// The `ssh` provider: a machine you already have (the lab server under a desk), reached as you
// reach it yourself: `--host [user@]host[:port]` or an alias of your ~/.ssh/config (ProxyJump,
// keys, agent and known_hosts are yours; berth pins nothing and adds no key).
//
// A berth machine there is a directory, ~/.berth/machines/NAME, holding its state (running or
// stopped) and its agent's files (Jupyter's port and token, the idle watcher's files):
// several berth machines share one host and one home, each with its own Jupyter. `up` checks
// the host (x86_64, free disk, GPUs through nvidia-smi), the engine puts berth's static agent
// there (verified by hash, replaced only when different) and starts Jupyter on the host's
// loopback, tunnelled as everywhere. Jupyter is rooted at the machine's work directory
// (default ~/berth/NAME); the store (default ~/.berth/storage) is made and kept. The home is
// the host's own and already kept: berth links nothing into the store unless --link-home.
// `stop` ends berth's processes there; `destroy` removes ~/.berth/machines/NAME only (the
// work directory and the store are the user's; `--purge` removes the store too, when no other
// machine there uses it). Nothing is billed. An `up` killed before berth recorded the machine
// is undone by its claim: a token in the record and in the machine directory (never another
// berth's namesake).
#pragma once

#include "provider/registry.hpp"

#include <optional>

namespace berth {

namespace sshhost {

// `[user@]host[:port]` or an ssh config alias, as typed.
struct Dest {
    std::string text; // as given (the machine id carries it)
    std::string host; // the hostname or alias ssh is given
    std::string user; // "" : the ssh config's
    int port = 0;     // 0 : the ssh config's
};
Result<Dest> parse_dest(const std::string &s);

// What the probe found on the host.
struct Probe {
    std::string arch, home;
    int cpus = 0;
    double ram_gb = 0, free_gb = 0;
    std::vector<std::pair<std::string, double>> gpus; // name, VRAM GB
};
Result<Probe> parse_probe(const std::string &out);

// Runs `script` with sh on the host (on stdin; ARG as $1), through the user's own ssh. Exit 255
// (ssh's own failure) is a network error naming the host; exit 3 is not_found.
Result<std::string> run_on(const Dest &d, const std::string &script, const std::string &arg,
                           std::chrono::seconds timeout);
// Runs one command line on the host with `input` on its stdin (the same errors).
Result<std::string> run_command(const Dest &d, const std::string &command, const std::string &input,
                                std::chrono::seconds timeout);
// What the host is: architecture, home, CPUs, RAM, free disk in the home, GPUs.
Result<Probe> probe(const Dest &d);
// The port and user ssh would use for it (`ssh -G`: the user's config applied).
SshEndpoint resolve(const Dest &d);

// `destroy --purge` of the store at absolute `store` on the host (machine NAME's; its own
// machine directory may be gone already). Refuses a path that is not a berth store or holds
// the home, a store another berth machine on the host may use, or one the home links into;
// an empty `store` (a machine an older berth made, which recorded none) is a usage error.
// check_only: "DEST:PATH, SIZE" or "" (nothing there); else removes it.
Result<std::string> purge_store(const Dest &d, const std::string &name, const std::string &store,
                                bool check_only);

// "NAME@DEST" <-> its parts.
std::string machine_id(const std::string &name, const std::string &dest);
Result<std::pair<std::string, Dest>> parse_id(const std::string &id);

} // namespace sshhost

class SshHostProvider : public Provider {
public:
    explicit SshHostProvider(Options opt);
    std::string name() const override { return "ssh"; }
    Capabilities capabilities() const override;
    Result<std::vector<Offer>> offers(const nlohmann::json &search) override;
    Result<UpPlan> plan(InstanceSpec spec, const Options &opt) override;
    Result<MachineInfo> create(const InstanceSpec &spec) override;
    Result<MachineInfo> describe(const std::string &id) override;
    Result<> stop(const std::string &id) override;
    Result<> start(const std::string &id) override;
    Result<> destroy(const std::string &id) override;
    Result<> forget(const std::string &name) override;
    Result<std::string> purge_store(const std::string &id, bool check_only) override;

private:
    Options m_opt;
};

Capabilities ssh_host_capabilities();
ProviderRow ssh_host_provider_row();

// The stop of a machine on a host, as a shell script over its agent directory $D: state
// `stopped` first (nothing restarts it), then berth's own processes end (Jupyter with its
// kernels, the watcher). Used from the client (over ssh) and by the machine's own watcher.
std::string ssh_host_stop_script();

} // namespace berth
