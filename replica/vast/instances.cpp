#include "instances.hpp"

#include "provider/local/local_provider.hpp"
#include "util/hash.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>

namespace replica {

using nlohmann::json;

namespace {

Reply no_such_instance() {
    return api_error(404, "no_such_instance", "Instance not found.");
}

} // namespace

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Account::Account(const std::vector<json> *offers, double credit, double boot)
    : m_offers(offers), m_credit(credit), m_boot(boot), m_opened(now_seconds()),
      m_initial_credit(credit) {}

Account::~Account() {
    m_quit = true;
    if (m_poller.joinable()) m_poller.join();
}

void Account::use_machines(const std::string &root, const std::string &berth_binary) {
    m_local = std::make_unique<berth::LocalProvider>(root);
    m_local->set_agent_binary(berth_binary);
    m_poller = std::thread([this] { poll_loop(); });
}

// State changes happen when they happen, not when someone looks: a poller advances every
// instance ten times a second (real machines report sshd up; meters tick).
void Account::poll_loop() {
    while (!m_quit) {
        {
            std::lock_guard lk(m_mu);
            double now = now_seconds();
            for (auto &[id, i] : m_instances)
                advance(i, now);
            // At a zero balance Vast stops instances (it does not destroy them); storage
            // keeps accruing, so the balance goes on falling (SPEC §8).
            if (m_credit - billed_total() <= 0)
                for (auto &[id, i] : m_instances) {
                    if (i.actual != "running" && i.actual != "loading") continue;
                    i.intended = "stopped";
                    go_down(i, "stopped", "stopped: the account's credit is exhausted\n");
                }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

void Account::set_credit_left(double left) {
    std::lock_guard lk(m_mu);
    m_credit = billed_total() + left;
}

// The machine goes down with its data kept: no container, nothing reaches sshd.
void Account::go_down(Instance &i, const std::string &actual, const std::string &msg) {
    i.actual = actual;
    i.status_msg = msg;
    if (i.proxy) {
        i.proxy->target(0);
        i.direct->target(0);
    }
    if (!i.machine.empty()) (void)m_local->stop(i.machine);
    i.log += "container stopped\n";
}

// Among interruptible rentals the highest bid has the GPU (SPEC §8): an instance bidding less
// than the other renter stops with its data kept, and comes back when it bids more.
void Account::decide_bid(Instance &i, double now) {
    if (i.bid < 0 || i.intended != "running") return;
    advance(i, now);
    bool loses = m_competing >= 0 && i.bid < m_competing;
    if (loses && (i.actual == "running" || i.actual == "loading")) {
        go_down(i, "stopped",
                "outbid: a higher bid has the GPU; it resumes when yours is highest\n");
    } else if (!loses && i.actual == "stopped") {
        i.actual = "loading";
        i.loading_since = now;
        i.status_msg.clear();
        if (!i.machine.empty()) (void)m_local->start(i.machine);
    }
}

void Account::set_competing_bid(double price) {
    std::lock_guard lk(m_mu);
    m_competing = price;
    double now = now_seconds();
    for (auto &[id, i] : m_instances)
        decide_bid(i, now);
}

void Account::take_offers(const std::vector<long long> &ids) {
    std::lock_guard lk(m_mu);
    m_taken.insert(ids.begin(), ids.end());
}

bool Account::offer_rented(long long offer_id) {
    std::lock_guard lk(m_mu);
    if (m_taken.count(offer_id)) return true;
    for (const auto &[id, i] : m_instances)
        if (i.offer_id == offer_id) return true;
    return false;
}

void Account::push_fate(const std::string &fate) {
    std::lock_guard lk(m_mu);
    m_fates.push_back(fate);
}

void Account::push_list_fault(const std::string &fault) {
    std::lock_guard lk(m_mu);
    m_list_faults.push_back(fault);
}

long long Account::instance_of_key(const std::string &key) {
    std::lock_guard lk(m_mu);
    for (const auto &[id, i] : m_instances)
        if (!i.container_key.empty() && i.container_key == key) return id;
    return 0;
}

Account::Instance *Account::find(long long id) {
    auto it = m_instances.find(id);
    return it == m_instances.end() ? nullptr : &it->second;
}

// Meters run per second: rent while running, storage while the instance exists and is not
// offline (SPEC §8).
void Account::meter(Instance &i, double until) {
    double span = until - i.metered_until;
    if (span <= 0) return;
    double storage_rate = i.offer.value("storage_cost", 0.0) * i.disk / 720.0 / 3600.0;
    double rent_rate = (i.bid >= 0 ? i.bid : i.offer.value("dph_base", 0.0)) / 3600.0;
    if (i.actual != "offline") i.storage_billed += storage_rate * span;
    if (i.actual == "running") i.rent_billed += rent_rate * span;
    i.metered_until = until;
}

// Transfer: every byte through the instance's forwarders, at the offer's $/GB (GB = 2^30
// bytes: the API's per-TB prices are its per-GB ones x 1024).
double Account::transfer_billed(const Instance &i) const {
    if (!i.proxy) return 0;
    double in = static_cast<double>(i.proxy->bytes_in() + i.direct->bytes_in()) / 1073741824.0;
    double out = static_cast<double>(i.proxy->bytes_out() + i.direct->bytes_out()) / 1073741824.0;
    return in * i.offer.value("inet_down_cost", 0.0) + out * i.offer.value("inet_up_cost", 0.0);
}

void Account::advance(Instance &i, double now) {
    bool booting = i.actual == "loading" && i.intended == "running";
    if (booting && !i.fate.empty() && now - i.loading_since >= m_boot) {
        meter(i, i.loading_since + m_boot);
        i.actual = i.fate;
        i.status_msg = i.fate == "exited"
                           ? "Error response from daemon: failed to create shim task: OCI runtime "
                             "create failed: unable to start container process\n"
                           : "host disconnected\n";
    } else if (booting && i.machine.empty() && i.fate.empty() && now - i.loading_since >= m_boot) {
        // A simulated boot: it came up at a moment that may be in the past.
        double t = i.loading_since + m_boot;
        meter(i, t);
        i.actual = "running";
        i.running_since = t;
        i.status_msg.clear();
    }
    meter(i, now);
    if (i.machine.empty() || !m_local) return;
    auto m = m_local->describe(i.machine);
    if (!m) return;
    if (i.intended == "running" && i.actual == "loading") {
        if (m->state == berth::MachineState::running) {
            // Vast says running when the container runs; its sshd may answer seconds later.
            i.actual = "running";
            i.running_since = now;
            i.ssh_port = m->ssh.port;
            i.sshd_at = now + m_sshd_lag;
            i.status_msg.clear();
            i.log += "container started\n";
        } else if (m->state == berth::MachineState::exited ||
                   m->state == berth::MachineState::stopped) {
            i.actual = "exited";
            i.status_msg = "Error: " + m->message + "\n";
        } else if (!m->message.empty()) {
            i.status_msg = m->message + "\n";
        }
    } else if (i.actual == "running" && m->state != berth::MachineState::running) {
        // The container ended by itself (its PID 1 died): Vast shows it exited.
        i.actual = "exited";
        i.proxy->target(0);
        i.direct->target(0);
        i.status_msg = m->message.empty() ? "container exited\n" : m->message + "\n";
        i.log += i.status_msg;
    } else if (i.actual == "running" && now >= i.sshd_at && i.proxy->target() == 0) {
        i.proxy->target(i.ssh_port);
        i.direct->target(i.ssh_port);
    }
}

json Account::row(Instance &i, double now) {
    json r = i.offer;
    double storage_hour = i.offer.value("storage_cost", 0.0) * i.disk / 720.0;
    double base = i.bid >= 0 ? i.bid : i.offer.value("dph_base", 0.0);
    r["id"] = i.id;
    r["actual_status"] = i.actual;
    r["intended_status"] = i.intended;
    r["cur_state"] = i.intended == "running" ? "running" : "stopped";
    r["next_state"] = r["cur_state"];
    r["status_msg"] = !i.status_msg.empty()   ? i.status_msg
                      : i.actual == "loading" ? "59729b65119e: Pull complete\n"
                                              : "";
    r["label"] = i.label.empty() ? json() : json(i.label);
    r["start_date"] = i.created;
    r["image_uuid"] = i.request.value("image", std::string());
    r["image_runtype"] = i.request.value("runtype", std::string("ssh"));
    r["onstart"] = i.request.value("onstart", json());
    json env = json::array(); // the API sends pairs; the CLI makes a dict of them
    if (i.request.contains("env") && i.request["env"].is_object())
        for (const auto &[k, v] : i.request["env"].items())
            env.push_back({k, v});
    r["extra_env"] = env;
    r["disk_space"] = i.disk;
    r["storage_total_cost"] = storage_hour;
    r["dph_base"] = base;
    r["dph_total"] = base + storage_hour;
    r["is_bid"] = i.bid >= 0;
    // The SSH endpoint, as the CLI's ssh-url reads it (SPEC §5). Vast assigns the ports at
    // create and reports them while the instance loads and while it is stopped (the CLI caches
    // the first answer): the proxy port is one below the machine's for a jupyter runtype (the
    // CLI adds 1); a direct runtype maps 22/tcp once the container exists.
    std::string runtype = i.request.value("runtype", std::string("ssh"));
    bool container = i.actual == "running" || i.actual == "loading" || i.actual == "rebooting";
    int via_proxy = i.proxy ? i.proxy->port() : i.sim_port;
    int via_direct = i.direct ? i.direct->port() : i.sim_port + 1;
    int proxy = via_proxy - (runtype.find("jupyter") != std::string::npos ? 1 : 0);
    r["ssh_host"] = "127.0.0.1";
    r["ssh_port"] = proxy;
    r["ssh_idx"] = "0";
    r["public_ipaddr"] = "127.0.0.1";
    r.erase("ports"); // Vast omits it until the container exists
    if (container && runtype.find("_direc") != std::string::npos)
        r["ports"]["22/tcp"] =
            json::array({{{"HostIp", "0.0.0.0"}, {"HostPort", std::to_string(via_direct)}},
                         {{"HostIp", "::"}, {"HostPort", std::to_string(via_direct)}}});
    r["direct_port_start"] = via_direct;
    r["direct_port_end"] = via_direct;
    r["direct_port_count"] = 1;
    r["machine_dir_ssh_port"] = via_direct;
    // The contract runs to the offer's end date; duration counts down to it.
    double end = i.offer.value("end_date", 0.0);
    if (end > 0) r["duration"] = std::max(0.0, end - now);
    r["jupyter_token"] = i.jupyter_token;
    r["uptime_mins"] = i.actual == "running" ? (now - i.running_since) / 60.0 : 0.0;
    double gib = 1073741824.0;
    r["inet_down_billed"] =
        i.proxy ? static_cast<double>(i.proxy->bytes_in() + i.direct->bytes_in()) / gib : 0.0;
    r["inet_up_billed"] =
        i.proxy ? static_cast<double>(i.proxy->bytes_out() + i.direct->bytes_out()) / gib : 0.0;
    r["transfer_billed"] = transfer_billed(i);
    bool running = i.actual == "running";
    r["instance"] = {{"gpuCostPerHour", running ? base : 0.0},
                     {"diskHour", storage_hour},
                     {"totalHour", (running ? base : 0.0) + storage_hour}};
    r["rent_billed"] = i.rent_billed; // replica extras, for tests
    r["storage_billed"] = i.storage_billed;
    return r;
}

Reply Account::create(long long offer_id, const json &body) {
    std::lock_guard lk(m_mu);
    return create_locked(offer_id, body);
}

// Vast's answer to renting an offer that is gone or rented (its OpenAPI's 404 example).
static Reply no_such_ask(long long offer_id) {
    Reply r = api_error(404, "invalid_args",
                        "error 404/3603: no_such_ask Instance type by id " +
                            std::to_string(offer_id) + " is not available.");
    r.body["ask_id"] = offer_id;
    return r;
}

// Makes (or makes again, for recycle) the real machine behind an instance.
void Account::boot_real(Instance &i, double now) {
    i.loading_since = now;
    i.actual = "loading";
    auto m = m_local->create(i.spec);
    if (!m) {
        i.actual = "exited";
        i.status_msg = "Error: could not start the machine: " + m.error().what + "\n";
        return;
    }
    for (const auto &[kid, k] : i.keys)
        (void)m_local->add_authorized_key(i.machine, k);
    i.log += "pulling image " + i.request.value("image", std::string()) + "\ncontainer created\n";
}

Reply Account::create_locked(long long offer_id, const json &body) {
    const json *offer = nullptr;
    for (const auto &o : *m_offers)
        if (o.value("id", 0LL) == offer_id) offer = &o;
    if (m_snipe > 0 && offer) { // another renter was quicker: it has this offer now
        --m_snipe;
        m_taken.insert(offer_id);
    }
    if (!offer || !offer->value("rentable", true) || offer->value("rented", false) ||
        offer_rented(offer_id))
        return no_such_ask(offer_id);
    double disk = 10;
    if (body.contains("disk") && body["disk"].is_number()) disk = body["disk"].get<double>();
    if (disk < 8) return api_error(400, "invalid_args", "disk must be at least 8 GB");
    Instance i{m_next_id++, *offer, body};
    i.offer_id = offer_id;
    i.created = i.loading_since = i.metered_until = now_seconds();
    i.disk = disk;
    i.sim_port = 20000 + static_cast<int>(i.id % 20000) * 2;
    if (body.contains("price") && body["price"].is_number()) {
        i.bid = body["price"].get<double>();
        if (i.bid < 0.001 || i.bid > 128)
            return api_error(400, "invalid_args", "price must be between 0.001 and 128");
        // A bid under min_bid is accepted and simply loses to others (the wire capture has
        // one); berth refuses it before asking.
    }
    if (body.contains("label") && body["label"].is_string()) i.label = body["label"];
    i.container_key = "ck-" + berth::random_hex(16);
    i.jupyter_token = berth::random_hex(32);
    if (!m_fates.empty()) {
        i.fate = m_fates.front();
        m_fates.pop_front();
        if (i.fate == "on-demand") { // the API's silent fallback (SPEC §3, vast-cli PR #403)
            i.bid = -1;
            i.fate.clear();
        }
    }
    for (const auto &[kid, k] : m_keys)
        i.keys[kid] = k;
    i.log = "instance " + std::to_string(i.id) + " created on machine " +
            std::to_string(offer->value("machine_id", 0LL)) + "\n";
    if (m_local && i.fate.empty()) {
        berth::InstanceSpec &spec = i.spec;
        spec.name = "vast-" + std::to_string(i.id);
        spec.jupyter = false;
        spec.storage = false;
        spec.workdir = "/workspace";
        spec.install_berth = false; // a Vast container has no berth: the client uploads it
        // The keys go in live (attach and detach change them while the machine runs).
        // The host's rsync endpoint for `copy` to and from the laptop (see rsync()): Vast's
        // vastai_kaalia login and a module named by the instance id; then the user's onstart.
        std::string ids = std::to_string(i.id);
        spec.onstart =
            "grep -q '^vastai_kaalia:' /etc/passwd || echo "
            "'vastai_kaalia:x:0:0:vast:/root:/bin/sh' "
            ">> /etc/passwd; for m in " +
            ids + " C." + ids +
            "; do printf '[%s]\\n path = /\\n "
            "use chroot = no\\n read only = no\\n uid = root\\n gid = root\\n' $m; done > "
            "/etc/rsyncd.conf\n" +
            (body.value("onstart", json()).is_string() ? body["onstart"].get<std::string>() : "");
        if (body.contains("env") && body["env"].is_object())
            for (const auto &[k, v] : body["env"].items())
                if (v.is_string() && !k.empty() && k[0] != '-') spec.env.emplace_back(k, v);
        spec.env.emplace_back("CONTAINER_ID", std::to_string(i.id));
        spec.env.emplace_back("CONTAINER_API_KEY", i.container_key);
        spec.env.emplace_back("VAST_CONTAINERLABEL", "C." + std::to_string(i.id));
        spec.env.emplace_back("PUBLIC_IPADDR", "127.0.0.1");
        i.machine = spec.name;
        i.proxy = std::make_shared<Forwarder>();
        i.direct = std::make_shared<Forwarder>();
        boot_real(i, i.created);
        if (i.actual == "exited") {
            i.machine.clear();
            return api_error(500, "server_error", i.status_msg);
        }
    }
    if (i.bid >= 0) decide_bid(i, i.created);
    long long id = i.id;
    m_instances.emplace(id, std::move(i));
    return {200, {{"success", true}, {"new_contract", id}}};
}

Reply Account::list() {
    std::lock_guard lk(m_mu);
    double now = now_seconds();
    json rows = json::array();
    for (auto &[id, i] : m_instances) {
        advance(i, now);
        rows.push_back(row(i, now));
    }
    if (!m_list_faults.empty()) {
        auto f = m_list_faults.front();
        m_list_faults.pop_front();
        if (f == "empty") return {200, {{"instances", json::array()}}};
        return {200, {{"instanses", rows.size()}}};
    }
    return {200, {{"instances", rows}}};
}

// The v1 list: 25 rows a page at most, ordered by id, `next_token` to follow (SPEC §4.1).
Reply Account::list_v1(int limit, long long after, const json &filters) {
    std::lock_guard lk(m_mu);
    double now = now_seconds();
    limit = std::clamp(limit <= 0 ? 25 : limit, 1, 25);
    std::string label_eq;
    if (filters.is_object() && filters.contains("label") && filters["label"].is_object())
        label_eq = filters["label"].value("eq", std::string());
    json rows = json::array(), counts = json::object();
    long long found = 0, last = 0;
    bool more = false;
    for (auto &[id, i] : m_instances) {
        advance(i, now);
        counts[i.label] = counts.value(i.label, 0) + 1;
        if (!label_eq.empty() && i.label != label_eq) continue;
        ++found;
        if (id <= after) continue;
        if (static_cast<int>(rows.size()) == limit) {
            more = true;
            continue;
        }
        rows.push_back(row(i, now));
        last = id;
    }
    if (!m_list_faults.empty()) {
        auto f = m_list_faults.front();
        m_list_faults.pop_front();
        if (f == "empty")
            rows = json::array();
        else
            return {200, {{"success", true}, {"instances_found", found}}};
    }
    return {200,
            {{"success", true},
             {"instances_found", found},
             {"total_instances", m_instances.size()},
             {"label_counts", counts},
             {"next_token", more ? json(std::to_string(last)) : json()},
             {"instances", rows}}};
}

Reply Account::show(long long id) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return {200, {{"instances", nullptr}}}; // the API answers null for a gone instance
    double now = now_seconds();
    advance(*i, now);
    return {200, {{"instances", row(*i, now)}}};
}

Reply Account::update(long long id, const json &body) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return no_such_instance();
    double now = now_seconds();
    advance(*i, now);
    if (body.contains("label")) {
        std::string l = body["label"].is_string() ? body["label"].get<std::string>() : "";
        if (l.size() > 1024) return api_error(400, "label_too_long", "label too long");
        i->label = l;
        return {200,
                {{"success", true},
                 {"msg", "label for " + std::to_string(id) + " set to '" + l + "'"}}};
    }
    std::string state = body.value("state", std::string());
    if (state == "stopped") {
        i->intended = "stopped";
        go_down(*i, i->actual == "offline" ? "offline" : "stopped", "");
    } else if (state == "running") {
        i->intended = "running";
        if (i->actual == "offline") return {200, {{"success", true}}}; // it stays unreachable
        if (i->actual != "running") {
            i->actual = "loading";
            i->loading_since = now;
            if (!i->machine.empty()) {
                auto s = m_local->start(i->machine);
                if (!s) i->status_msg = "Error: " + s.error().what + "\n";
            } else if (i->fate.empty()) {
                i->actual = "running"; // a simulated restart is immediate
                i->running_since = now;
            }
        }
    } else {
        return api_error(400, "invalid_args", "state must be running or stopped");
    }
    return {200, {{"success", true}}};
}

Reply Account::destroy(long long id) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return no_such_instance();
    advance(*i, now_seconds());
    m_charges.push_back(charge_row(*i, now_seconds()));
    if (!i->machine.empty()) {
        auto d = m_local->destroy(i->machine);
        if (!d) return api_error(500, "server_error", "could not destroy: " + d.error().what);
    }
    m_instances.erase(id);
    return {200, {{"success", true}}};
}

// Vast writes times as ISO 8601 in UTC.
static std::string iso_time(double t) {
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

Reply Account::ssh_keys() {
    std::lock_guard lk(m_mu);
    json out = json::array();
    for (const auto &[id, k] : m_keys)
        out.push_back({{"id", id},
                       {"user_id", 1},
                       {"key", k},
                       {"created_at", iso_time(m_key_times[id])},
                       {"deleted_at", nullptr}});
    return {200, out};
}

Reply Account::add_ssh_key(const json &body) {
    std::lock_guard lk(m_mu);
    std::string k = body.value("ssh_key", std::string());
    while (!k.empty() && (k.back() == '\n' || k.back() == ' '))
        k.pop_back();
    if (k.empty()) return api_error(400, "invalid_args", "No ssh key provided");
    if (k.rfind("ssh-", 0) != 0 && k.rfind("ecdsa-", 0) != 0)
        return api_error(400, "invalid_args", "not a public SSH key");
    long long id = m_next_key++;
    m_keys[id] = k;
    m_key_times[id] = now_seconds();
    // [D]: a new account key is also added to every current instance.
    for (auto &[iid, i] : m_instances) {
        i.keys[id] = k;
        if (!i.machine.empty()) (void)m_local->add_authorized_key(i.machine, k);
    }
    return {200,
            {{"success", true},
             {"key",
              {{"id", id},
               {"user_id", 1},
               {"public_key", k},
               {"created_at", iso_time(m_key_times[id])},
               {"deleted_at", nullptr}}}}};
}

Reply Account::delete_ssh_key(long long id) {
    std::lock_guard lk(m_mu);
    if (!m_keys.erase(id)) return api_error(404, "no_such_ssh_key", "SSH key not found.");
    return {200, {{"success", true}}};
}

Reply Account::attach_key(long long instance, const json &body) {
    std::lock_guard lk(m_mu);
    auto *i = find(instance);
    if (!i) return no_such_instance();
    std::string key = body.value("ssh_key", std::string());
    while (!key.empty() && (key.back() == '\n' || key.back() == ' '))
        key.pop_back();
    if (key.empty()) return api_error(400, "no_ssh_key", "ssh_key is required");
    long long kid = 0;
    for (const auto &[id, k] : m_keys)
        if (k == key) kid = id;
    if (!kid) { // a key of this instance only: it gets an id of its own
        kid = m_next_key++;
        m_key_times[kid] = now_seconds();
    }
    i->keys[kid] = key;
    if (!i->machine.empty()) {
        auto a = m_local->add_authorized_key(i->machine, key);
        if (!a) return api_error(500, "server_error", a.error().what);
    }
    return {200, {{"success", true}, {"msg", "SSH key attached successfully"}}};
}

// Detach really detaches: the key no longer logs in to that machine.
Reply Account::detach_key(long long instance, long long key) {
    std::lock_guard lk(m_mu);
    auto *i = find(instance);
    if (!i) return api_error(404, "no_such_instance", "Instance not found.");
    auto it = i->keys.find(key);
    if (it == i->keys.end()) return api_error(400, "invalid_args", "Invalid request parameters");
    if (!i->machine.empty()) {
        auto r = m_local->remove_authorized_key(i->machine, it->second);
        if (!r)
            return api_error(500, "delete_ssh_from_instance",
                             "Error deleting SSH key from instance");
    }
    i->keys.erase(it);
    return {200, {{"success", true}, {"msg", "SSH key removed from instance."}}};
}

Reply Account::instance_ssh_keys(long long id) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return no_such_instance();
    json out = json::array();
    for (const auto &[kid, k] : i->keys)
        out.push_back({{"id", kid},
                       {"user_id", 1},
                       {"key", k},
                       {"created_at", iso_time(m_key_times[kid])},
                       {"deleted_at", nullptr}});
    return {200, {{"success", true}, {"ssh_keys", out}}};
}

// One instance's charges as the old invoice list shows them: what, how many hours at which
// rate, and the amount (rent + storage + transfer), with the parts beside for tests.
json Account::charge_row(Instance &i, double now) {
    double base = i.bid >= 0 ? i.bid : i.offer.value("dph_base", 0.0);
    double amount = i.rent_billed + i.storage_billed + transfer_billed(i);
    double hours = base > 0 ? i.rent_billed / base : 0.0;
    return {{"instance_id", i.id},
            {"type", "charge"},
            {"description", "Instance " + std::to_string(i.id) + " GPU and storage charges"},
            {"quantity", hours},
            {"rate", base},
            {"amount", amount},
            {"transfer", transfer_billed(i)},
            {"timestamp", now},
            {"start", i.created},
            {"end", now},
            {"label", i.label},
            {"rent", i.rent_billed},
            {"storage", i.storage_billed}};
}

double Account::billed_total() {
    double now = now_seconds(), sum = 0;
    for (auto &[id, i] : m_instances) {
        advance(i, now);
        sum += i.rent_billed + i.storage_billed + transfer_billed(i);
    }
    for (const auto &c : m_charges)
        sum += c.value("amount", 0.0);
    return sum;
}

Reply Account::user(const std::string &api_key) {
    std::lock_guard lk(m_mu);
    double billed = billed_total();
    // The legacy CLI pops "api_key" without a default: it must be present.
    return {200,
            {{"id", 1},
             {"username", "replica"},
             {"email", "replica@localhost"},
             {"fullname", "Replica User"},
             {"credit", m_credit - billed},
             // What is owed beyond the prepaid credit (0 while the credit lasts).
             {"balance", std::max(0.0, billed - m_credit)},
             {"balance_threshold", 0.0},
             {"balance_threshold_enabled", false},
             {"billaddress_country", nullptr},
             {"billing_creditonly", true},
             {"got_signup_credit", false},
             {"has_payout", false},
             {"paid_expected", 0.0},
             {"paid_verified", 0.0},
             {"billed_expected", billed},
             {"billed_verified", billed},
             {"user", "replica"},
             {"sid", "replica-session"},
             {"api_key", api_key},
             {"key_id", 1},
             {"ssh_key", m_keys.empty() ? json() : json(m_keys.begin()->second)},
             {"email_verified", true},
             {"has_billing", true},
             {"can_pay", true},
             {"billed_total", billed}}};
}

Reply Account::invoices(double since, double until) {
    std::lock_guard lk(m_mu);
    json rows = json::array();
    for (const auto &c : m_charges) {
        double t = c.value("timestamp", 0.0);
        if (t >= since && t <= until) rows.push_back(c);
    }
    double now = now_seconds();
    for (auto &[id, i] : m_instances) {
        advance(i, now);
        rows.push_back(charge_row(i, now));
    }
    return {200,
            {{"invoices", rows}, {"current", {{"charges", billed_total()}, {"credit", m_credit}}}}};
}

} // namespace replica
