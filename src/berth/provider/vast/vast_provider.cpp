#include "provider/vast/vast_provider.hpp"

#include "util/backoff.hpp"
#include "util/strings.hpp"

#include <chrono>
#include <cstdio>
#include <thread>

namespace berth {

using nlohmann::json;

namespace {

double now_epoch() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// "ssh-ed25519 AAAA... comment" -> "ssh-ed25519 AAAA..." (comments differ, keys do not).
std::string key_body(const std::string &k) {
    auto parts = str::split(str::trim(k), ' ');
    return parts.size() >= 2 ? parts[0] + " " + parts[1] : str::trim(k);
}

} // namespace

VastProvider::VastProvider(vast::Credentials c, HttpSender send, HttpSender send_once)
    : m_creds(std::move(c)), m_send(std::move(send)), m_send_once(std::move(send_once)) {}

Result<json> VastProvider::call(const std::string &method, const std::string &path,
                                const json &body, const std::string &what) {
    auto r = m_send(vast::api_request(m_creds, method, path, body));
    if (!r) return fail("Vast.ai " + what + ": " + r.error().what, "retry later");
    return vast::parse_object(*r, what);
}

Result<std::vector<Offer>> VastProvider::offers() {
    auto r = m_send(vast::search_request(m_creds, {{"limit", 1000}, {"type", "on-demand"}}));
    if (!r) return tl::unexpected(r.error());
    auto raw = vast::parse_search(*r);
    if (!raw) return tl::unexpected(raw.error());
    std::vector<Offer> out;
    for (const auto &o : *raw)
        out.push_back(vast::to_offer(o));
    return out;
}

Result<json> VastProvider::offer(const std::string &id) {
    long long n = std::atoll(id.c_str());
    if (n <= 0 || std::to_string(n) != id)
        return fail("bad offer id '" + id + "'", "offer ids are numbers; see `berth offers`", 2);
    // The id filter, with the defaults dropped: the offer may be ours to check, rented or not.
    auto r = m_send(vast::search_request(m_creds, {{"id", {{"eq", n}}}, {"limit", 1}}));
    if (!r) return tl::unexpected(r.error());
    auto raw = vast::parse_search(*r);
    if (!raw) return tl::unexpected(raw.error());
    if (raw->empty())
        return fail("no Vast.ai offer " + id, "it may be rented already; see `berth offers`", 2);
    return raw->front();
}

Result<> VastProvider::ensure_key(const std::string &public_key) {
    auto r = m_send(vast::api_request(m_creds, "GET", "/api/v0/ssh/"));
    if (!r) return fail("Vast.ai ssh keys: " + r.error().what, "retry later");
    if (r->status != 200)
        return fail("Vast.ai refused to list SSH keys: " + vast::describe_error(*r));
    auto list = json::parse(r->body, nullptr, false);
    if (!list.is_array())
        return fail("Vast.ai answered the SSH key list with something that is not a list",
                    "retry later");
    for (const auto &k : list) {
        std::string text = k.value("key", k.value("public_key", std::string()));
        if (key_body(text) == key_body(public_key)) return {};
    }
    auto added = call("POST", "/api/v0/ssh/", {{"ssh_key", str::trim(public_key)}},
                      "registering berth's SSH key");
    if (!added) return tl::unexpected(added.error());
    return {};
}

Result<MachineInfo> VastProvider::create(const InstanceSpec &spec) {
    if (spec.offer_id.empty())
        return fail("Vast.ai needs an offer to rent", "pass --offer ID or --query '...'", 2);
    if (spec.bid) {
        auto o = offer(spec.offer_id);
        if (!o) return tl::unexpected(o.error());
        double min_bid = o->value("min_bid", 0.0);
        if (*spec.bid < min_bid) {
            char buf[160];
            std::snprintf(buf, sizeof buf, "bid $%.4f/h is below offer %s's minimum bid $%.4f/h",
                          *spec.bid, spec.offer_id.c_str(), min_bid);
            return fail(buf,
                        "bid at least the min_bid (`berth offers --explain " + spec.offer_id + "`)",
                        2);
        }
    }
    // Keys must be registered before the instance exists, or SSH fails (SPEC §9.5).
    BERTH_TRY(ensure_key(spec.authorized_keys));
    json body = vast::create_body(spec);
    std::string path = "/api/v0/asks/" + spec.offer_id + "/";
    Backoff backoff;
    std::string last;
    for (int attempt = 0; attempt < backoff.attempts(); ++attempt) {
        if (attempt > 0) {
            std::this_thread::sleep_for(backoff.next());
            // The last answer was lost or refused for load: did the instance get made anyway?
            auto mine = list();
            if (!mine) return tl::unexpected(mine.error());
            for (const auto &m : *mine)
                if (!spec.label.empty() && m.label == spec.label) return m;
        }
        auto r = m_send_once(vast::api_request(m_creds, "PUT", path, body));
        if (!r) {
            if (r.error().code != 1) return tl::unexpected(r.error());
            last = r.error().what;
            continue;
        }
        if (r->status == 429 || r->status == 502 || r->status == 503 || r->status == 504) {
            last = vast::describe_error(*r);
            continue;
        }
        auto j = vast::parse_object(*r, "the rental of offer " + spec.offer_id);
        if (!j) return tl::unexpected(j.error());
        if (!j->value("success", false) || !j->contains("new_contract"))
            return fail("Vast.ai did not rent offer " + spec.offer_id + ": " + j->dump());
        MachineInfo m;
        m.id = std::to_string((*j)["new_contract"].get<long long>());
        m.state = MachineState::provisioning;
        m.label = spec.label;
        if (spec.bid) {
            // The API turns a bid it did not take into an on-demand rental without a word
            // (SPEC §3): look, and undo it rather than bill the user at the on-demand price.
            auto seen = describe(m.id);
            if (!seen) return tl::unexpected(seen.error());
            if (seen->state != MachineState::gone && !seen->interruptible) {
                auto d = destroy(m.id);
                return fail(
                    "Vast.ai made instance " + m.id +
                        " on-demand although berth bid; it was destroyed" +
                        (d ? "" : std::string(" (destroying failed: ") + d.error().what + ")"),
                    "retry, or rent on-demand without --bid", 1);
            }
        }
        return m;
    }
    return fail("Vast.ai did not answer the rental of offer " + spec.offer_id + ": " + last,
                "retry later; `berth ls --reconcile` finds an instance made meanwhile");
}

Result<MachineInfo> VastProvider::describe(const std::string &id) {
    auto j = call("GET", "/api/v0/instances/" + id + "/?owner=me", nullptr, "instance " + id);
    if (!j) return tl::unexpected(j.error());
    if (!j->contains("instances"))
        return fail("Vast.ai answered instance " + id + " without an \"instances\" key",
                    "retry later");
    const auto &row = (*j)["instances"];
    if (row.is_null()) {
        MachineInfo m;
        m.id = id;
        m.state = MachineState::gone;
        return m;
    }
    if (!row.is_object())
        return fail("Vast.ai answered instance " + id + " with a malformed row", "retry later");
    return vast::parse_instance(row, now_epoch());
}

Result<> VastProvider::stop(const std::string &id) {
    auto j = call("PUT", "/api/v0/instances/" + id + "/", {{"state", "stopped"}},
                  "stopping instance " + id);
    if (!j) return tl::unexpected(j.error());
    return {};
}

Result<> VastProvider::start(const std::string &id) {
    auto j = call("PUT", "/api/v0/instances/" + id + "/", {{"state", "running"}},
                  "starting instance " + id);
    if (!j) return tl::unexpected(j.error());
    return {};
}

Result<> VastProvider::destroy(const std::string &id) {
    auto r = m_send(
        vast::api_request(m_creds, "DELETE", "/api/v0/instances/" + id + "/", json::object()));
    if (!r) return fail("Vast.ai destroying instance " + id + ": " + r.error().what, "retry later");
    // 404: already gone, or never ours; the caller confirms with a GET either way.
    if (r->status == 404) return {};
    auto j = vast::parse_object(*r, "destroying instance " + id);
    if (!j) return tl::unexpected(j.error());
    return {};
}

Result<std::vector<MachineInfo>> VastProvider::list() {
    std::vector<MachineInfo> out;
    std::string token;
    double now = now_epoch();
    for (int page = 0; page < 1000; ++page) {
        std::string path = "/api/v1/instances/?limit=25";
        if (!token.empty()) path += "&after_token=" + token;
        auto j = call("GET", path, nullptr, "the instance list");
        if (!j) return tl::unexpected(j.error());
        // SkyPilot lost billing machines by reading a malformed answer as "none": not here.
        if (!j->contains("instances") || !(*j)["instances"].is_array())
            return fail("Vast.ai answered the instance list without a list of instances",
                        "retry later; nothing was changed");
        for (const auto &row : (*j)["instances"])
            out.push_back(vast::parse_instance(row, now));
        auto next = j->value("next_token", json());
        if (next.is_null() || (next.is_string() && next.get<std::string>().empty())) break;
        token = next.is_string() ? next.get<std::string>() : next.dump();
    }
    return out;
}

Result<> VastProvider::attach_key(const std::string &id, const std::string &public_key) {
    BERTH_TRY(ensure_key(public_key)); // new instances get it too
    auto j = call("POST", "/api/v0/instances/" + id + "/ssh/", {{"ssh_key", str::trim(public_key)}},
                  "adding berth's SSH key to instance " + id);
    if (!j) return tl::unexpected(j.error());
    return {};
}

Result<std::optional<double>> VastProvider::credit() {
    auto j = call("GET", "/api/v0/users/current/", nullptr, "the account");
    if (!j) return tl::unexpected(j.error());
    if (!j->contains("credit") || !(*j)["credit"].is_number())
        return fail("Vast.ai answered the account without a credit", "retry later");
    return std::optional<double>((*j)["credit"].get<double>());
}

} // namespace berth
