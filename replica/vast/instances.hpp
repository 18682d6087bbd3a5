// The replica's account: instances with Vast's state machine and per-second billing meters,
// SSH keys, the user object and invoices (../../shared/vastai/SPEC.md §3-§5, §8).
//
// Instances are real when the replica is given a machines directory: creating one starts a
// local-provider machine shaped like a Vast container (sshd only, the account's keys
// authorized, /workspace kept until destroy, the request's onstart and env), and ssh_host /
// ssh_port point at its sshd. Without one they are simulated: loading -> running after
// `boot_seconds`. Either way: stop and start through PUT {"state":...}; DELETE makes GET
// answer {"instances": null}; meters bill rent (dph_base, or the bid price) per second while
// running and storage (storage_cost x disk / 720 per hour) per second while the instance
// exists, stopped included, except while offline. Ports are assigned at create; a real
// machine is running before its sshd answers (the sshd lag); a rented offer is not for rent.
// The rest of the official client's commands (reboot, recycle, bid, logs, execute, copy,
// bulk, billing, env vars) are in operations.cpp.
#pragma once

#include "forward.hpp"

#include <atomic>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "provider/provider.hpp"

namespace berth {
class LocalProvider;
}

namespace replica {

struct Reply {
    int status = 200;
    nlohmann::json body;
};

// The API's error body: {"success": false, "error": CODE, "msg": TEXT}.
inline Reply api_error(int status, const std::string &code, const std::string &msg) {
    return {status, {{"success", false}, {"error", code}, {"msg", msg}}};
}

class Account {
public:
    Account(const std::vector<nlohmann::json> *offers, double credit, double boot_seconds);
    ~Account();
    // Real machines: local-provider machines under `root`, booted by `berth_binary agent boot`.
    void use_machines(const std::string &root, const std::string &berth_binary);
    // Faults for the next instances: "exited" or "offline" (they never come up), and for the
    // next list answers: "empty" (no rows though instances exist) or "malformed".
    void push_fate(const std::string &fate);
    void push_list_fault(const std::string &fault);
    // The instance whose own key (CONTAINER_API_KEY) this is, or 0. Such a key is good only
    // for that instance's own endpoints.
    long long instance_of_key(const std::string &key);
    // Test control: leave the account `left` dollars of credit from now.
    void set_credit_left(double left);
    // Test control: another renter bids `price` $/h on every machine (a negative price: no
    // other bid; infinity: always higher). Interruptible instances bidding less stop with their
    // data kept and resume when theirs is highest again (a bid change re-decides).
    void set_competing_bid(double price);
    // Test control: another renter takes these offers (they leave search; renting fails).
    void take_offers(const std::vector<long long> &ids);
    // Test control: the next `n` rentals lose their offer to another renter just before.
    void snipe(int n) {
        std::lock_guard lk(m_mu);
        m_snipe = n;
    }
    // Whether an offer is rented now (by this account or another renter).
    bool offer_rented(long long offer_id);
    // How long sshd lags behind `running` on a real machine (Vast reports running first).
    void set_sshd_lag(double seconds) { m_sshd_lag = seconds; }
    // Where result_url links point (the replica's own address, standing in for S3).
    void set_base_url(std::string url) { m_base_url = std::move(url); }
    // A result blob (logs, command output) by name; nullopt when none.
    std::optional<std::string> blob(const std::string &name);

    Reply list_v1(int limit, long long after, const nlohmann::json &filters);
    Reply create(long long offer_id, const nlohmann::json &body);
    Reply list();
    Reply show(long long id);
    Reply update(long long id, const nlohmann::json &body);
    Reply destroy(long long id);
    Reply ssh_keys();
    Reply add_ssh_key(const nlohmann::json &body);
    Reply delete_ssh_key(long long id);
    Reply attach_key(long long instance, const nlohmann::json &body);
    Reply detach_key(long long instance, long long key);
    Reply user(const std::string &api_key);
    Reply invoices(double since, double until);
    // The rest of what the official client calls (SPEC §5): see instances.cpp.
    Reply bulk_state(const nlohmann::json &body);
    Reply bulk_destroy(const nlohmann::json &body);
    Reply bulk_create(const nlohmann::json &body);
    Reply reboot(long long id);
    Reply recycle(long long id);
    Reply change_bid(long long id, const nlohmann::json &body);
    Reply prepay(long long id, const nlohmann::json &body);
    Reply deposit(long long id);
    Reply update_template(long long id, const nlohmann::json &body);
    Reply request_logs(long long id, const nlohmann::json &body);
    Reply execute(long long id, const nlohmann::json &body);
    Reply copy_direct(const nlohmann::json &body);
    Reply cancel_copy(const nlohmann::json &body);
    Reply rsync(const nlohmann::json &body);
    Reply instance_ssh_keys(long long id);
    Reply secrets(const std::string &method, const nlohmann::json &body);
    Reply invoices_v1(const nlohmann::json &filters, int limit, long long after, bool charges);
    Reply ipaddrs();

    // Exact money billed so far (for tests comparing berth's ledger).
    double billed_total();

private:
    struct Instance {
        long long id;
        nlohmann::json offer;
        nlohmann::json request;
        std::string intended = "running", actual = "loading", label;
        double created = 0, loading_since = 0, running_since = 0, disk = 10, bid = -1;
        double rent_billed = 0, storage_billed = 0, metered_until = 0;
        long long offer_id = 0;
        std::map<long long, std::string> keys; // the keys that log in, by account key id
        std::string machine;                   // the local machine's name; empty: simulated
        berth::InstanceSpec spec; // what the machine was made of (recycle makes it again)
        std::string log;          // the container's log (logs): boot, onstart, reboots
        double sshd_at = 0;       // when a real machine's sshd is reachable (lags running)
        double prepaid = 0;       // a reserved instance's deposit
        int sim_port = 0;         // a simulated instance's SSH proxy port
        std::string fate;         // "exited" / "offline": it never comes up
        std::string status_msg, container_key, jupyter_token;
        int ssh_port = 0;
        // Real machines are reached through two counting forwarders, as on Vast: the proxy
        // (ssh_host:ssh_port) and the direct host port (ports["22/tcp"]).
        std::shared_ptr<Forwarder> proxy, direct;
    };
    void advance(Instance &i, double now);
    void meter(Instance &i, double until);
    void decide_bid(Instance &i, double now);
    void go_down(Instance &i, const std::string &actual, const std::string &msg);
    void boot_real(Instance &i, double now);
    Reply create_locked(long long offer_id, const nlohmann::json &body);
    nlohmann::json charge_row(Instance &i, double now);
    std::string put_blob(const std::string &text);
    std::optional<std::filesystem::path> machine_path(Instance &i, const std::string &path);
    double transfer_billed(const Instance &i) const;
    void poll_loop();
    nlohmann::json row(Instance &i, double now);
    Instance *find(long long id);

    const std::vector<nlohmann::json> *m_offers;
    std::map<long long, Instance> m_instances;
    std::map<long long, std::string> m_keys;
    std::map<long long, double> m_key_times;
    std::vector<nlohmann::json> m_charges; // closed charges of destroyed instances
    double m_credit, m_boot;
    std::unique_ptr<berth::LocalProvider> m_local;
    std::deque<std::string> m_fates, m_list_faults;
    std::atomic<bool> m_quit{false};
    std::thread m_poller;
    long long m_next_id = 20000001, m_next_key = 1;
    double m_sshd_lag = 3, m_competing = -1, m_opened = 0, m_initial_credit = 0;
    std::set<long long> m_taken; // offers rented by other renters
    int m_snipe = 0;
    std::map<std::string, std::string> m_secrets, m_blobs;
    std::string m_base_url;
    std::recursive_mutex m_mu; // recursive: bulk calls run the single ones
};

double now_seconds();

} // namespace replica
