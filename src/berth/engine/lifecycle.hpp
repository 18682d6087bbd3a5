// The engine: state transitions, waiting with progress, intents, SSH pinning and the Jupyter
// tunnel, above any provider. Commands call these; providers only translate.
#pragma once

#include "provider/provider.hpp"
#include "remote/ssh.hpp"
#include "state/state.hpp"

#include <chrono>
#include <functional>
#include <optional>
#include <string>

namespace berth {

// How the engine reports progress (the cli draws it; tests may ignore it).
using ProgressFn = std::function<void(const std::string &)>;

struct UpRequest {
    std::string name;
    std::string provider = "local";
    double max_hours = 0;
    std::chrono::seconds timeout{180};
    // Rented machines (ignored by local):
    std::string offer_id, image, api_key;
    double disk_gb = 0;
    std::optional<double> bid;
};

class Engine {
public:
    Engine(StateDb &db, ProgressFn progress) : m_db(db), m_progress(std::move(progress)) {}

    // Creates a machine and returns its record once SSH and Jupyter answer and the tunnel is up.
    Result<InstanceRecord> up(const UpRequest &req);
    Result<InstanceRecord> start(const std::string &name, std::chrono::seconds timeout);
    Result<InstanceRecord> stop(const std::string &name);
    Result<> destroy(const std::string &name);

    // Asks the provider and updates the record (a machine that stopped itself at its deadline
    // becomes `stopped`). Never fails the caller for a provider error: it is kept as message.
    InstanceRecord refresh(InstanceRecord r);

    // Rebuilds records from the provider's machines that carry a berth label ("berth:NAME"),
    // for when the local state was lost. Returns the names it added. Never marks a record
    // destroyed from a list: only a GET of that machine saying it is gone does.
    Result<std::vector<std::string>> reconcile(const std::string &provider,
                                               const ProviderOptions &opt = {});

    // Reuses a live tunnel or opens one; returns the record with tunnel_port set.
    Result<InstanceRecord> ensure_tunnel(InstanceRecord r);

    // The record for name, or an error naming the instances there are.
    Result<InstanceRecord> find(const std::string &name);

    static ssh::Target target_of(const InstanceRecord &r);
    static std::string jupyter_url(const InstanceRecord &r);

private:
    Result<InstanceRecord> wait_running(InstanceRecord r, Provider &p,
                                        std::chrono::seconds timeout);
    void close_tunnel(InstanceRecord &r);
    void note_meters(const InstanceRecord &r, const MachineInfo &m);
    Result<> destroy_failed(InstanceRecord &r, Provider &p);
    Result<> refresh_ssh_config();

    StateDb &m_db;
    ProgressFn m_progress;
};

// Instance names become host names and directory names: [a-z0-9-], 1..40, starting alnum.
Result<> validate_name(const std::string &name);

} // namespace berth
