// The Paperspace replica's account: machines with their state machine and events, startup
// scripts, public IPs, templates, machine types, account standing and the bill. Time moves
// states: every call first advances the account to "now" (no threads). Built from
// ../../shared/paperspace/SPEC.md §8 and the recorded data in ../../shared/paperspace/data/.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace berth {
class LocalProvider;
}

namespace ps {

using nlohmann::json;

double now_seconds();
std::string iso(double epoch); // "2026-12-02T01:24:17.123Z"

struct MachineType {
    std::string label; // "P4000", "A100-80Gx8"
    std::string gpu_name;
    int gpu_count = 0;
    double gpu_memory_gb = 0, ram_gb = 0, price = 0;
    int vcpus = 0;
    std::vector<std::string> regions; // "NY2", "CA1", "AMS1"
};

// An API error: status and the {code, message} body.
struct ApiError {
    int status;
    std::string message;
};

class Account {
public:
    // data: the recorded machine_types.csv and os_templates.json; boot: seconds a machine
    // spends provisioning + starting.
    Account(const std::string &data_dir, double boot_seconds);
    ~Account();
    // Makes machines real: local-provider VMs under `root` (a kept disk, the user
    // `paperspace`, sshd on the machine's public IP, port 22, startup scripts run as root).
    void use_machines(const std::string &root, const std::string &berth_binary);

    std::mutex mu; // every call below holds it

    // Faults and controls (POST /_replica/...).
    void set_standing(bool good) { m_good_standing = good; }
    void push_capacity_failure(int n) { m_capacity_failures += n; }
    void set_off_rate(bool bill_compute_while_off) { m_bill_off = bill_compute_while_off; }

    json session(const std::string &key) const;
    json standing() const;
    std::vector<json> templates() const;
    const std::vector<MachineType> &machine_types() const { return m_types; }

    // Machines; an ApiError is thrown for a request the API refuses.
    std::vector<json> machines(double now, const std::map<std::string, std::string> &filter);
    json machine(double now, const std::string &id);
    json create(double now, const json &body); // {data, event}
    json update(double now, const std::string &id, const json &body);
    json start(double now, const std::string &id);
    json stop(double now, const std::string &id);
    json restart(double now, const std::string &id);
    json remove(double now, const std::string &id);
    json event(double now, const std::string &id);
    std::vector<json> events(double now, const std::string &machine_id);

    // Startup scripts.
    std::vector<json> scripts() const;
    json script(const std::string &id) const;
    json create_script(double now, const json &body);
    json update_script(const std::string &id, const json &body);
    json delete_script(double now, const std::string &id);
    json assign_script(const std::string &id, const json &body, bool assign);

    // Public IPs.
    std::vector<json> ips(double now) const;
    json claim_ip(double now, const json &body);
    json assign_ip(double now, const std::string &ip, const json &body);
    json release_ip(double now, const std::string &ip);

    // The bill so far, per machine and in total (dollars), at the recorded rates.
    json bill(double now);

private:
    struct Event {
        std::string id, machine_id, name, state = "new", error;
        double created = 0, started = 0, finished = 0;
        double done_at = 0; // when it ends
        bool fails = false;
    };
    struct Machine {
        std::string id, name, type, region, template_id, public_ip_type = "dynamic", public_ip;
        std::string private_ip, state = "provisioning", startup_script;
        double disk_gb = 50;
        bool auto_shutdown = false, auto_shutdown_force = false;
        std::optional<double> auto_shutdown_hours;
        double created = 0, modified = 0, deleted = 0;
        // The state machine: the next state and when (0: settled).
        std::string next_state;
        double next_at = 0, then_at = 0;
        std::string then_state;
        // Meters: seconds billed so far, and since when the current interval runs.
        double rent = 0, disk = 0, ip = 0; // dollars
        double running_since = 0, exists_since = 0;
        double ready_since = 0; // for the auto-shutdown deadline
        bool real = false;      // a VM exists behind it (use_machines)
    };
    struct Script {
        std::string id, name, script, description;
        bool run_once = false, enabled = true;
        std::vector<std::string> machines;
        double created = 0, deleted = 0;
    };
    struct Ip {
        std::string ip, region, machine;
        double claimed = 0, billed_since = 0, dollars = 0;
    };

    void advance(double now);
    void settle(Machine &m, double now);
    void meter(Machine &m, double until);
    Machine &find(const std::string &id);
    const MachineType &type_of(const std::string &label) const;
    std::string region_code(const std::string &spelling) const;
    json machine_json(const Machine &m) const;
    json event_json(const Event &e) const;
    json script_json(const Script &s) const;
    Event &new_event(double now, const std::string &machine, const std::string &name,
                     double duration, bool fails = false);
    std::string fresh_ip();
    double disk_rate(double gb) const; // $/h for a disk of this size (the tier that holds it)

    std::vector<MachineType> m_types;
    std::vector<json> m_templates;
    std::vector<std::pair<double, double>> m_disk_tiers; // size GB, $/h
    // Real machines (use_machines): boots, stops and deletes the VM behind a machine.
    void real_boot(Machine &m);
    void real_stop(Machine &m);
    bool real_running(const Machine &m);
    std::unique_ptr<berth::LocalProvider> m_local;
    std::string m_local_root;
    double m_ip_rate = 0.0045;
    double m_boot;
    bool m_good_standing = true, m_bill_off = false;
    int m_capacity_failures = 0;
    std::map<std::string, Machine> m_machines;
    std::vector<std::string> m_order; // machine ids, oldest first
    std::map<std::string, Event> m_events;
    std::vector<std::string> m_event_order;
    std::map<std::string, Script> m_scripts;
    std::map<std::string, Ip> m_ips;
    std::map<std::string, double> m_gone_bill; // deleted machines' final bill
    int m_next_ip = 10;
};

} // namespace ps
