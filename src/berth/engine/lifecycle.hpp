// The engine: state transitions, waiting with progress, intents, SSH pinning and the Jupyter
// tunnel, above any provider. Commands call these; providers only translate. The engine is
// handed a registry and asks providers for capabilities, never for their names.
//
// Intent before action, and `up` as one transaction: the record and a pending `create`
// intent are written before the provider is asked, and the intent is done only once the
// machine is ready. While a command works on an instance it holds that instance's lock
// (flock, released by the kernel when the process dies). A record whose lock is free but
// whose intent is still pending was left by an interrupted or killed berth; the next command
// that touches it resolves it: an unfinished `up` is rolled back (the machine found by its id
// or its label is destroyed, so nothing bills), an unfinished `destroy` is finished, an
// unfinished `stop`/`start` takes the provider's word.
#pragma once

#include "provider/registry.hpp"
#include "remote/ssh.hpp"
#include "state/state.hpp"
#include "util/lock.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace berth {

// How the engine reports progress (the cli draws it; tests may ignore it).
using ProgressFn = std::function<void(const std::string &)>;

// Where a machine on a host berth does not own keeps its things (InstanceSpec's host fields,
// kept in the record's spec).
struct HostShape {
    bool user_ssh = false;
    std::string jump; // reached through this host (a cluster's login node)
    std::string agent_dir, workdir, store;
    bool link_home = false;
};

struct UpRequest {
    std::string name;
    std::string provider;
    double max_hours = 0;
    std::chrono::seconds timeout{180};
    Options options;        // the provider's own (flags over its config section)
    long idle_seconds = -1; // -1: the default (60 min where billed, off where not); 0: off
    idle::Thresholds idle_thresholds;
};

// Reaching a machine the provider says runs: pin its host key, check SSH, bootstrap it if it
// came up bare, open the Jupyter tunnel. Returns the record ready. A seam: unit tests replace
// it, the real one uses OpenSSH.
using ConnectFn = std::function<Result<InstanceRecord>(InstanceRecord, Provider &)>;

// What `up` planned, for the CLI to show before the wait (notes, warnings).
using PlanFn = std::function<void(const UpPlan &)>;

class Engine {
public:
    Engine(StateDb &db, const ProviderRegistry &registry, ProgressFn progress)
        : m_db(db), m_registry(registry), m_progress(std::move(progress)) {}

    // Creates a machine and returns its record once SSH and Jupyter answer and the tunnel is
    // up. On failure or interrupt, what was created is destroyed (kind interrupted: exit 130).
    Result<InstanceRecord> up(const UpRequest &req, const PlanFn &on_plan = {});
    Result<InstanceRecord> start(const std::string &name, std::chrono::seconds timeout);
    Result<InstanceRecord> stop(const std::string &name);
    Result<> destroy(const std::string &name);
    // `destroy --purge`: the store the machine used, through its provider (see
    // Provider::purge_store); `r` as it was before its destroy.
    Result<std::string> purge_store(const InstanceRecord &r, bool check_only);

    // Asks the provider and updates the record (a machine that stopped itself at its deadline
    // becomes `stopped`); resolves a record an interrupted berth left first. Never fails the
    // caller for a provider error: it is kept as message.
    InstanceRecord refresh(InstanceRecord r);

    // Resolves a record left mid-transition by an interrupted or killed berth (see above).
    // Returns the record as it is now; a record that another berth is working on is left.
    Result<InstanceRecord> resolve(InstanceRecord r);

    // Rebuilds records from the provider's machines that carry a berth label ("berth:NAME"),
    // for when the local state was lost. Returns the names it added. Never marks a record
    // destroyed from a list: only a GET of that machine saying it is gone does.
    Result<std::vector<std::string>> reconcile(const std::string &provider,
                                               const Options &opt = {});

    // Replaces how a running machine is reached (tests).
    void set_connect(ConnectFn f) { m_connect = std::move(f); }

    // Reuses a live tunnel or opens one; returns the record with tunnel_port set.
    Result<InstanceRecord> ensure_tunnel(InstanceRecord r);

    // The record for name, or an error naming the instances there are.
    Result<InstanceRecord> find(const std::string &name);

    // The provider of a record, and its capabilities.
    Result<std::unique_ptr<Provider>> provider_of(const InstanceRecord &r, const Options &opt = {});

    static ssh::Target target_of(const InstanceRecord &r);
    static HostShape host_of(const InstanceRecord &r);
    static std::string jupyter_url(const InstanceRecord &r);

private:
    Result<InstanceRecord> wait_running(InstanceRecord r, Provider &p,
                                        std::chrono::seconds timeout);
    Result<InstanceRecord> bootstrap(InstanceRecord r, Provider &p);
    Result<InstanceRecord> connect(InstanceRecord r, Provider &p);
    Result<InstanceRecord> rollback(InstanceRecord r, Provider &p, const Error &why);
    Result<> confirm_destroyed(InstanceRecord &r, Provider &p, const std::string &message);
    Result<> destroy_locked(InstanceRecord r, Provider &p);
    void close_tunnel(InstanceRecord &r);
    void note_meters(const InstanceRecord &r, const MachineInfo &m);
    Result<> refresh_ssh_config();
    Result<> check_interrupt(const std::string &step);

    StateDb &m_db;
    const ProviderRegistry &m_registry;
    ProgressFn m_progress;
    ConnectFn m_connect;
};

// Instance names become host names and directory names: [a-z0-9-], 1..40, starting alnum.
Result<> validate_name(const std::string &name);

// The lock a command holds while it works on an instance (see above). Fails with kind
// conflict, naming the holder's pid, when another berth holds it.
Result<FileLock> lock_instance(const std::string &name);

} // namespace berth
