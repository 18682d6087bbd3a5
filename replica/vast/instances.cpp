#include "instances.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace replica {

using nlohmann::json;

namespace {

// The API's error body: {"success": false, "error": CODE, "msg": TEXT}.
Reply api_error(int status, const std::string &code, const std::string &msg) {
    return {status, {{"success", false}, {"error", code}, {"msg", msg}}};
}

Reply no_such_instance() {
    return api_error(404, "no_such_instance", "Instance not found.");
}

} // namespace

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

Account::Account(const std::vector<json> *offers, double credit, double boot)
    : m_offers(offers), m_credit(credit), m_boot(boot) {}

Account::Instance *Account::find(long long id) {
    auto it = m_instances.find(id);
    return it == m_instances.end() ? nullptr : &it->second;
}

// Meters run per second: rent while running, storage while the instance exists.
void Account::advance(Instance &i, double now) {
    if (i.actual == "loading" && now - i.created >= m_boot && i.intended == "running") {
        i.actual = "running";
        i.running_since = i.created + m_boot; // the moment it came up, not when someone looked
    }
    double from = i.metered_until, span = now - from;
    if (span <= 0) return;
    double storage_rate = i.offer.value("storage_cost", 0.0) * i.disk / 720.0 / 3600.0;
    double rent_rate = (i.bid >= 0 ? i.bid : i.offer.value("dph_base", 0.0)) / 3600.0;
    i.storage_billed += storage_rate * span;
    if (i.actual == "running") i.rent_billed += rent_rate * (now - std::max(from, i.running_since));
    i.metered_until = now;
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
    r["status_msg"] = i.actual == "loading" ? "pulling image\n" : "";
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
    r["ssh_host"] = "127.0.0.1";
    r["ssh_port"] = 0;
    r["ssh_idx"] = "0";
    r["ports"] = json::object();
    r["jupyter_token"] = json();
    r["uptime_mins"] = i.actual == "running" ? (now - i.running_since) / 60.0 : 0.0;
    r["inet_up_billed"] = 0.0;
    r["inet_down_billed"] = 0.0;
    r["instance"] = {
        {"gpuCostPerHour", 0}, {"diskHour", storage_hour}, {"totalHour", storage_hour}};
    return r;
}

Reply Account::create(long long offer_id, const json &body) {
    std::lock_guard lk(m_mu);
    const json *offer = nullptr;
    for (const auto &o : *m_offers)
        if (o.value("id", 0LL) == offer_id) offer = &o;
    if (!offer) return api_error(404, "no_such_ask", "Offer not found.");
    if (!offer->value("rentable", true) || offer->value("rented", false))
        return api_error(410, "ask_unavailable", "Offer no longer available.");
    double disk = 10;
    if (body.contains("disk") && body["disk"].is_number()) disk = body["disk"].get<double>();
    if (disk < 8) return api_error(400, "invalid_args", "disk must be at least 8 GB");
    Instance i{m_next_id++, *offer, body};
    i.created = i.metered_until = now_seconds();
    i.disk = disk;
    if (body.contains("price") && body["price"].is_number()) i.bid = body["price"].get<double>();
    if (body.contains("label") && body["label"].is_string()) i.label = body["label"];
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
    return {200, {{"instances", rows}}};
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
        i->actual = "stopped";
    } else if (state == "running") {
        i->intended = "running";
        if (i->actual != "running") {
            i->actual = "loading";
            i->created = now - m_boot; // a restart boots again, immediately here
            i->actual = "running";
            i->running_since = now;
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
    m_charges.push_back({{"instance_id", id},
                         {"type", "charge"},
                         {"description", "instance " + std::to_string(id)},
                         {"amount", i->rent_billed + i->storage_billed},
                         {"timestamp", now_seconds()},
                         {"rent", i->rent_billed},
                         {"storage", i->storage_billed}});
    m_instances.erase(id);
    return {200, {{"success", true}}};
}

Reply Account::ssh_keys() {
    std::lock_guard lk(m_mu);
    json out = json::array();
    for (const auto &[id, k] : m_keys)
        out.push_back(
            {{"id", id}, {"user_id", 1}, {"key", k}, {"created_at", 0}, {"deleted_at", nullptr}});
    return {200, out};
}

Reply Account::add_ssh_key(const json &body) {
    std::lock_guard lk(m_mu);
    std::string k = body.value("ssh_key", std::string());
    if (k.rfind("ssh-", 0) != 0 && k.rfind("ecdsa-", 0) != 0)
        return api_error(400, "invalid_args", "not a public SSH key");
    long long id = m_next_key++;
    m_keys[id] = k;
    return {200,
            {{"success", true},
             {"key",
              {{"id", id},
               {"user_id", 1},
               {"public_key", k},
               {"created_at", 0},
               {"deleted_at", nullptr}}}}};
}

Reply Account::delete_ssh_key(long long id) {
    std::lock_guard lk(m_mu);
    if (!m_keys.erase(id)) return api_error(404, "no_such_ssh_key", "SSH key not found.");
    return {200, {{"success", true}}};
}

Reply Account::attach_key(long long instance, const json &body) {
    std::lock_guard lk(m_mu);
    if (!find(instance)) return no_such_instance();
    if (body.value("ssh_key", std::string()).empty())
        return api_error(400, "no_ssh_key", "ssh_key is required");
    return {200, {{"success", true}, {"msg", "SSH key added to instance."}}};
}

Reply Account::detach_key(long long instance, long long) {
    std::lock_guard lk(m_mu);
    if (!find(instance)) return no_such_instance();
    return {200, {{"success", true}, {"msg", "SSH key removed from instance."}}};
}

double Account::billed_total() {
    double now = now_seconds(), sum = 0;
    for (auto &[id, i] : m_instances) {
        advance(i, now);
        sum += i.rent_billed + i.storage_billed;
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
             {"balance", -(m_credit - billed)},
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
        rows.push_back({{"instance_id", id},
                        {"type", "charge"},
                        {"description", "instance " + std::to_string(id)},
                        {"amount", i.rent_billed + i.storage_billed},
                        {"timestamp", now},
                        {"rent", i.rent_billed},
                        {"storage", i.storage_billed}});
    }
    return {200,
            {{"invoices", rows}, {"current", {{"charges", billed_total()}, {"credit", m_credit}}}}};
}

Reply Account::simple_ok(long long instance) {
    std::lock_guard lk(m_mu);
    if (!find(instance)) return no_such_instance();
    return {200, {{"success", true}}};
}

} // namespace replica
