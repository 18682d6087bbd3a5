#include "provider/vast/vast_provider.hpp"

#include "core/cost.hpp"
#include "core/json_read.hpp"
#include "core/paths.hpp"
#include "offers/query.hpp"
#include "util/backoff.hpp"
#include "util/fs.hpp"
#include "util/process.hpp"
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

Capabilities VastProvider::capabilities() const {
    return vast_capabilities();
}

Capabilities vast_capabilities() {
    Capabilities c;
    c.billed = true;
    c.stop_keeps_disk = true;
    c.shared_volume = false;
    c.bootstrap_over_ssh = true;
    c.lists_machines = true;
    c.filters_offers = true;
    c.offers_need_credentials = true;
    c.workdir = "/workspace";
    c.destroy_loses = {"workspace"};
    c.self_stop = "api";
    c.poll_interval = std::chrono::milliseconds(1000);
    c.storage_note =
        "/workspace (kept until destroy; your environment persists in /workspace/.berth)";
    c.stop_note = "/workspace is kept and bills storage";
    c.destroy_note = "nothing bills any more";
    return c;
}

Result<std::vector<Offer>> VastProvider::offers(const json &search) {
    json body = search.is_object() ? search : json::object();
    // Only what a table, a session price and a ranking read; every field for one offer asked
    // by id (--explain).
    std::vector<std::string> keep = {
        "id",           "gpu_name",     "num_gpus",    "gpu_ram",
        "dph_base",     "dph_total",    "dlperf",      "dlperf_per_dphtotal",
        "reliability",  "inet_down",    "inet_up",     "inet_down_cost",
        "inet_up_cost", "storage_cost", "geolocation", "is_bid",
        "min_bid",      "score"};
    if (body.contains("order") && body["order"].is_array())
        for (const auto &k : body["order"])
            if (k.is_array() && !k.empty() && k[0].is_string()) keep.push_back(k[0]);
    bool by_id = body.contains("id");
    auto r = m_send(vast::search_request(m_creds, body));
    if (!r) return tl::unexpected(r.error());
    auto raw = vast::parse_search(*r, by_id ? nullptr : &keep);
    if (!raw) return tl::unexpected(raw.error());
    std::vector<Offer> out;
    out.reserve(raw->size());
    for (auto &o : *raw)
        out.push_back(vast::to_offer(std::move(o)));
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
        std::string text = jsonr::text(k, "key", jsonr::text(k, "public_key"));
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
        double min_bid = jsonr::num(*o, "min_bid");
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
                if (!spec.label.empty() && name_from_label(m.label) == spec.name) return m;
        }
        auto r = m_send_once(vast::api_request(m_creds, "PUT", path, body));
        if (!r) {
            if (!transient(r.error())) return tl::unexpected(r.error());
            last = r.error().what;
            continue;
        }
        if (r->status == 429 || r->status == 502 || r->status == 503 || r->status == 504) {
            last = vast::describe_error(*r);
            continue;
        }
        // Someone else rented the offer after the search: Vast answers 404 (410 when asked
        // to cancel_unavail) with "no_such_ask". Nothing was made; another offer may do.
        if ((r->status == 404 || r->status == 410) && str::contains(r->body, "no_such_ask"))
            return fail(ErrorKind::conflict,
                        "offer " + spec.offer_id +
                            " was rented by someone else between the search and the rental",
                        "run `berth up` again: it searches afresh");
        auto j = vast::parse_object(*r, "the rental of offer " + spec.offer_id);
        if (!j) return tl::unexpected(j.error());
        if (!jsonr::boolean(*j, "success") || !j->contains("new_contract"))
            return fail(ErrorKind::refused,
                        "Vast.ai did not rent offer " + spec.offer_id + ": " +
                            jsonr::clean_line(
                                j->dump(-1, ' ', false, json::error_handler_t::replace), 300));
        auto id = jsonr::require_id(*j, "new_contract", "Vast.ai's answer to the rental");
        if (!id) {
            // Rented, but under an id berth cannot read: find it by its label and undo it.
            auto mine = list();
            if (mine)
                for (const auto &m : *mine)
                    if (!spec.label.empty() && name_from_label(m.label) == spec.name)
                        (void)destroy(m.id);
            return tl::unexpected(id.error());
        }
        MachineInfo m;
        m.id = *id;
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
        return fail(ErrorKind::malformed,
                    "Vast.ai answered instance " + id + " with a malformed row", "retry later");
    return vast::parse_instance(row, now_epoch());
}

Result<> VastProvider::stop(const std::string &id) {
    auto j = call("PUT", "/api/v0/instances/" + id + "/", {{"state", "stopped"}},
                  "stopping instance " + id);
    if (!j) return tl::unexpected(j.error());
    return {};
}

Result<> VastProvider::start(const std::string &id) {
    // A machine that stopped itself carries the reason in its label: clear it as it starts.
    if (auto m = describe(id); m && !label_note(m->label).empty()) {
        auto l = call("PUT", "/api/v0/instances/" + id + "/",
                      {{"label", berth_label(name_from_label(m->label))}}, "relabelling " + id);
        if (!l) return tl::unexpected(l.error());
    }
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
        for (const auto &row : (*j)["instances"]) {
            if (!row.is_object())
                return fail(ErrorKind::malformed,
                            "Vast.ai answered the instance list with a row that is not an object",
                            "retry later; nothing was changed");
            out.push_back(vast::parse_instance(row, now));
        }
        token = jsonr::text(*j, "next_token", "", 512);
        if (token.empty()) break;
        if (token.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "0123456789-_=.") != std::string::npos)
            return fail(ErrorKind::malformed,
                        "Vast.ai answered the instance list with a bad "
                        "next_token",
                        "retry later");
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
        return fail(ErrorKind::malformed, "Vast.ai answered the account without a numeric 'credit'",
                    "retry later");
    return std::optional<double>(jsonr::num(*j, "credit"));
}

// --query: the best offer by DLPerf per dollar among those the query matches.
Result<json> VastProvider::pick_offer(const std::string &query, const std::string &type,
                                      double disk) {
    offers::SearchRequest sr{query, false, "dlperf_per_dphtotal-", type, 1, disk};
    auto body = offers::build_search(sr);
    if (!body) return tl::unexpected(body.error());
    auto r = m_send(vast::search_request(m_creds, *body));
    if (!r) return tl::unexpected(r.error());
    auto found = vast::parse_search(*r);
    if (!found) return tl::unexpected(found.error());
    if (found->empty())
        return fail(ErrorKind::not_found, "no Vast.ai offer matches '" + query + "'",
                    "loosen the query; `berth offers '" + query + "'` shows what matches", 2);
    return found->front();
}

namespace {

std::string opt_or(const Options &o, const char *k, const std::string &def) {
    auto it = o.find(k);
    return it == o.end() ? def : it->second;
}

Result<double> opt_number(const Options &o, const char *k, double def) {
    auto it = o.find(k);
    if (it == o.end()) return def;
    char *end = nullptr;
    double d = std::strtod(it->second.c_str(), &end);
    if (it->second.empty() || *end || !(d >= 0) || d > 1e9)
        return fail(ErrorKind::user,
                    "--" + std::string(k) + " needs a number, got '" +
                        jsonr::clean_line(it->second, 40) + "'",
                    "", 2);
    return d;
}

} // namespace

// Before renting: the offer, the bid pitfall, and whether the credit covers the session.
Result<UpPlan> VastProvider::plan(InstanceSpec spec, const Options &opt) {
    std::string offer_id = opt_or(opt, "offer", ""), query = opt_or(opt, "query", "");
    std::string type = opt_or(opt, "type", "on-demand");
    auto disk = opt_number(opt, "disk", 10);
    auto hours_opt = opt_number(opt, "hours", 0);
    if (!disk) return tl::unexpected(disk.error());
    if (!hours_opt) return tl::unexpected(hours_opt.error());
    std::optional<double> bid;
    if (opt.count("bid")) {
        auto b = opt_number(opt, "bid", 0);
        if (!b) return tl::unexpected(b.error());
        bid = *b;
    }
    if (offer_id.empty() == query.empty())
        return fail(ErrorKind::user, "say which offer to rent", "pass --offer ID or --query '...'",
                    2);
    if (!offer_id.empty() &&
        (offer_id.size() > 18 || offer_id.find_first_not_of("0123456789") != std::string::npos))
        return fail(ErrorKind::user, "bad offer id '" + jsonr::clean_line(offer_id, 40) + "'",
                    "offer ids are numbers", 2);
    if (type == "interruptible") type = "bid";
    if (type == "bid" && !bid)
        return fail(ErrorKind::user, "--type bid needs --bid PRICE",
                    "without a price the API silently rents on-demand at the full price", 2);
    auto offer = offer_id.empty() ? pick_offer(query, type, *disk) : this->offer(offer_id);
    if (!offer) return tl::unexpected(offer.error());
    auto id = jsonr::require_id(*offer, "id", "Vast.ai's offer");
    if (!id) return tl::unexpected(id.error());
    spec.offer_id = *id;
    spec.image = opt_or(opt, "image", "fastdotai/fastai-course");
    spec.disk_gb = *disk;
    spec.bid = bid;
    UpPlan plan{spec, {}, {}};
    double rent = bid ? *bid : jsonr::num(*offer, "dph_base");
    double hours = *hours_opt > 0 ? *hours_opt : (spec.max_hours > 0 ? spec.max_hours : 1.0);
    auto est = cost::estimate({rent, jsonr::num(*offer, "storage_cost"), 0, 0},
                              {hours, hours, *disk, 0, 0});
    char line[256];
    std::snprintf(line, sizeof line,
                  "renting offer %s: %lld x %s, $%.4f/h rent + $%.4f/h storage; %.4g h = $%.4f",
                  spec.offer_id.c_str(), jsonr::integer(*offer, "num_gpus"),
                  jsonr::text(*offer, "gpu_name", "?", 64).c_str(), rent, est.storage / hours,
                  hours, est.total());
    plan.notes.push_back(line);
    auto c = credit();
    if (c && *c && **c < est.total()) {
        std::snprintf(line, sizeof line,
                      "the planned %.4g h ($%.2f) would run the credit out ($%.2f left): Vast "
                      "stops instances at a zero balance",
                      hours, est.total(), **c);
        plan.warnings.push_back(line);
    }
    return plan;
}

ProviderRow vast_provider_row() {
    ProviderRow row;
    row.name = "vast";
    row.summary = "Vast.ai's GPU marketplace (key: VAST_API_KEY or the vastai CLI's key file)";
    row.capabilities = vast_capabilities();
    row.options = {
        {"offer", "the offer id to rent (see `berth offers`)", "", false, false},
        {"query", "rent the best DLPerf/$ offer matching this query", "", false, false},
        {"image", "the container image", "fastdotai/fastai-course"},
        {"disk", "GB of disk", "10"},
        {"bid", "interruptible, bidding $/h for the whole machine", "", false, false},
        {"type", "on-demand or bid (with --query)", "on-demand"},
        {"hours",
         "planned session length, checked against the credit (default --max-hours, else 1)", "",
         false, false},
        {"api-key-file",
         "a file holding the Vast.ai API key, - for stdin (default: VAST_API_KEY, "
         "else ~/.config/vastai/vast_api_key); never the key itself on a command line",
         "", false, false, true},
    };
    row.make = [](const ProviderContext &ctx) -> Result<std::unique_ptr<Provider>> {
        auto it = ctx.options.find("api-key-file");
        auto c = vast::load_credentials(it == ctx.options.end() ? "" : it->second);
        if (!c) return tl::unexpected(c.error());
        return std::unique_ptr<Provider>(new VastProvider(*c, ctx.send, ctx.send_once));
    };
    row.self_stop = [](const std::string &api_url, const std::string &label,
                       const std::string &reason) {
        return vast_self_stop(api_url, (paths::home() / ".berth" / "vast.env").string(), label,
                              reason);
    };
    return row;
}

namespace {

std::string env_value(const std::string &text, const std::string &key) {
    if (const char *v = std::getenv(key.c_str()); v && *v) return v;
    for (const auto &line : str::split(text, '\n'))
        if (line.rfind(key + "=", 0) == 0) return str::trim(line.substr(key.size() + 1));
    return {};
}

} // namespace

Result<> vast_self_stop(const std::string &api_url, const std::string &env_file,
                        const std::string &label, const std::string &reason) {
    std::string env_text = fs::read_file(env_file).value_or("");
    std::string id = env_value(env_text, "CONTAINER_ID");
    std::string key = env_value(env_text, "CONTAINER_API_KEY");
    if (id.empty() || key.empty() || api_url.empty())
        return fail("CONTAINER_ID/CONTAINER_API_KEY or the API URL are unknown: cannot stop "
                    "this machine");
    if (id.find_first_not_of("0123456789") != std::string::npos)
        return fail("CONTAINER_ID '" + jsonr::clean_line(id, 30) + "' is not a number");
    std::string url = api_url + "/api/v0/instances/" + id + "/";
    proc::Options opt;
    opt.input = "Authorization: Bearer " + key + "\n";
    opt.timeout = std::chrono::seconds(30);
    // The machine's own client: curl, else its Python (images for deep learning have one).
    // Either way the key arrives on stdin, never on a command line.
    auto put = [&](const std::string &body) -> Result<> {
        Result<proc::Output> r = fail("neither curl nor python3 on this machine");
        if (proc::which("curl"))
            r = proc::run({"curl", "-fsS", "-X", "PUT", "-H", "@-", "-H",
                           "Content-Type: application/json", "--data", body, url},
                          opt);
        else if (proc::which("python3"))
            r = proc::run({"python3", "-c",
                           "import sys,urllib.request\n"
                           "h=sys.stdin.readline().strip().split(': ',1)\n"
                           "q=urllib.request.Request(sys.argv[1],data=sys.argv[2].encode(),"
                           "method='PUT',headers={h[0]:h[1],'Content-Type':'application/json'})\n"
                           "urllib.request.urlopen(q,timeout=30).read()",
                           url, body},
                          opt);
        if (!r) return tl::unexpected(r.error());
        if (r->status != 0) return fail("request failed: " + str::trim(r->err));
        return {};
    };
    // The reason first, where `berth ls` reads it (best effort: the stop matters more).
    std::string name = name_from_label(label);
    if (!name.empty() && !reason.empty()) {
        std::string note = berth_label(name) + " | " + reason;
        if (note.size() > 1000) note.resize(1000);
        (void)put(nlohmann::json{{"label", note}}.dump());
    }
    auto r = put(R"({"state":"stopped"})");
    if (!r) return fail("stop " + r.error().what);
    return {};
}

} // namespace berth
