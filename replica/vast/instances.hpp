// The replica's account: instances with Vast's state machine and per-second billing meters,
// SSH keys, the user object and invoices (../../shared/vastai/SPEC.md §3-§5, §8).
//
// Instances are simulated here: created -> loading -> running after `boot_seconds`, stop and
// start through PUT {"state":...}, DELETE makes GET answer {"instances": null}. Meters bill
// rent (dph_base, or the bid price) per second while running, storage (storage_cost x disk /
// 720 per hour) per second while the instance exists, stopped included. Backing instances with
// real local-provider machines (so ssh_host/ssh_port reach a real sshd) is the next step.
#pragma once

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace replica {

struct Reply {
    int status = 200;
    nlohmann::json body;
};

class Account {
public:
    Account(const std::vector<nlohmann::json> *offers, double credit, double boot_seconds);

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
    Reply simple_ok(long long instance);

    // Exact money billed so far (for tests comparing berth's ledger).
    double billed_total();

private:
    struct Instance {
        long long id;
        nlohmann::json offer;
        nlohmann::json request;
        std::string intended = "running", actual = "loading", label;
        double created = 0, running_since = 0, disk = 10, bid = -1;
        double rent_billed = 0, storage_billed = 0, metered_until = 0;
        std::vector<long long> keys;
    };
    void advance(Instance &i, double now);
    nlohmann::json row(Instance &i, double now);
    Instance *find(long long id);

    const std::vector<nlohmann::json> *m_offers;
    std::map<long long, Instance> m_instances;
    std::map<long long, std::string> m_keys;
    std::vector<nlohmann::json> m_charges; // closed charges of destroyed instances
    double m_credit, m_boot;
    long long m_next_id = 20000001, m_next_key = 1;
    std::mutex m_mu;
};

double now_seconds();

} // namespace replica
