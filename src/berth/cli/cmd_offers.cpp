// berth offers: find and rank machines across providers, priced by the one cost model.
#include "cli/commands.hpp"
#include "core/cost.hpp"
#include "engine/retry.hpp"
#include "offers/query.hpp"
#include "provider/vast/vast_api.hpp"
#include "util/strings.hpp"
#include "util/term.hpp"

#include <algorithm>
#include <cstdio>

namespace berth::cli {

namespace {

struct OffersArgs {
    std::vector<std::string> query;
    std::string sort = "score-", provider = "all", type = "on-demand", explain, api_key;
    double hours = 1, disk = 10, download = 0, upload = 0;
    int limit = 50;
    bool no_default = false;
};

struct Row {
    std::string provider;
    nlohmann::json raw; // the provider's own fields (Vast's names)
    cost::Breakdown session;
};

cost::Breakdown session_cost(const nlohmann::json &o, const OffersArgs &a) {
    cost::Rates r{o.value("is_bid", false) ? o.value("min_bid", 0.0) : o.value("dph_base", 0.0),
                  o.value("storage_cost", 0.0), o.value("inet_down_cost", 0.0),
                  o.value("inet_up_cost", 0.0)};
    return cost::estimate(r, {a.hours, a.hours, a.disk, a.download, a.upload});
}

std::vector<Row> vast_rows(const OffersArgs &a, const nlohmann::json &body) {
    auto creds = must(vast::load_credentials(a.api_key));
    auto res =
        must(send_with_retry(vast::search_request(creds, body), {}, [](const std::string &m) {
            std::fprintf(stderr, "berth: vast: %s\n", m.c_str());
        }));
    // Only what the table, the session price, --json and the ranking read; every field for
    // --explain (one offer).
    std::vector<std::string> keep = {
        "id",           "gpu_name",     "num_gpus",    "gpu_ram",
        "dph_base",     "dph_total",    "dlperf",      "dlperf_per_dphtotal",
        "reliability",  "inet_down",    "inet_up",     "inet_down_cost",
        "inet_up_cost", "storage_cost", "geolocation", "is_bid",
        "min_bid",      "score"};
    for (const auto &k : must(offers::parse_order(a.sort)))
        keep.push_back(k[0].get<std::string>());
    std::vector<Row> rows;
    for (auto &o : must(vast::parse_search(res, a.explain.empty() ? &keep : nullptr)))
        rows.push_back({"vast", std::move(o), {}});
    for (auto &r : rows)
        r.session = session_cost(r.raw, a);
    return rows;
}

std::vector<Row> local_rows(const OffersArgs &a) {
    auto p = must(make_provider("local"));
    std::vector<Row> rows;
    for (const auto &o : must(p->offers())) {
        nlohmann::json raw{{"id", o.id},
                           {"gpu_name", o.gpu_name},
                           {"num_gpus", o.gpu_count},
                           {"gpu_ram", o.vram_gb * 1000},
                           {"dph_base", 0.0},
                           {"dph_total", 0.0},
                           {"storage_cost", 0.0},
                           {"reliability", 1.0},
                           {"geolocation", o.location}};
        rows.push_back({"local", raw, session_cost(raw, a)});
    }
    return rows;
}

std::string num(double v, const char *fmt) {
    char buf[32];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

void explain(const Row &r, const OffersArgs &a) {
    const auto &o = r.raw;
    say("offer " + o.value("id", nlohmann::json(0)).dump() + " on " + r.provider + ": " +
        std::to_string(o.value("num_gpus", 0)) + "x " + o.value("gpu_name", std::string()));
    double rent = o.value("is_bid", false) ? o.value("min_bid", 0.0) : o.value("dph_base", 0.0);
    say("  rent      " + num(rent, "$%.4f") + "/hr x " + num(a.hours, "%.4g") +
        " h = " + num(r.session.rent, "$%.4f"));
    say("  storage   " + num(o.value("storage_cost", 0.0), "$%.4f") + "/GB-month x " +
        num(a.disk, "%.4g") + " GB / 720 h x " + num(a.hours, "%.4g") + " h = " +
        num(r.session.storage, "$%.4f") + "   (billed while the instance exists, stopped too)");
    say("  transfer  " + num(o.value("inet_down_cost", 0.0), "$%.4f") + "/GB x " +
        num(a.download, "%.4g") + " GB down + " + num(o.value("inet_up_cost", 0.0), "$%.4f") +
        "/GB x " + num(a.upload, "%.4g") + " GB up = " + num(r.session.transfer, "$%.4f"));
    say("  total     " + num(r.session.total(), "$%.4f") + " for the session");
}

std::string id_of(const nlohmann::json &raw) {
    auto id = raw.value("id", nlohmann::json());
    return id.is_string() ? id.get<std::string>() : id.dump();
}

nlohmann::json session_json(const cost::Breakdown &b) {
    return {
        {"rent", b.rent}, {"storage", b.storage}, {"transfer", b.transfer}, {"total", b.total()}};
}

// Offers from every provider asked for; Vast.ai is skipped with a warning under `all` when no
// key is configured.
std::vector<Row> collect(Context &ctx, const OffersArgs &a, const nlohmann::json &body) {
    std::vector<Row> rows;
    if ((a.provider == "local" || a.provider == "all") &&
        (a.explain.empty() || a.provider == "local"))
        rows = local_rows(a);
    if (a.provider == "vast" || a.provider == "all") {
        auto creds = vast::load_credentials(a.api_key);
        if (creds || a.provider == "vast") {
            auto v = vast_rows(a, body);
            rows.insert(rows.end(), std::make_move_iterator(v.begin()),
                        std::make_move_iterator(v.end()));
        } else if (!ctx.json) {
            warn("Vast.ai offers skipped: " + creds.error().line());
        }
    }
    return rows;
}

// One ranking across providers: the first sort key, on the shared field names.
void rank(std::vector<Row> &rows, const std::string &sort) {
    auto order = must(offers::parse_order(sort));
    if (order.empty()) return;
    std::string key = order[0][0];
    bool desc = order[0][1] == "desc";
    std::stable_sort(rows.begin(), rows.end(), [&](const Row &x, const Row &y) {
        double p = x.raw.value(key, 0.0), q = y.raw.value(key, 0.0);
        return desc ? p > q : p < q;
    });
}

nlohmann::json row_json(const Row &r) {
    const auto &o = r.raw;
    return {{"provider", r.provider},
            {"id", o.value("id", nlohmann::json())},
            {"gpu_name", o.value("gpu_name", std::string())},
            {"num_gpus", o.value("num_gpus", 0)},
            {"vram_gb", o.value("gpu_ram", 0.0) / 1000.0},
            {"dph_total", o.value("dph_total", 0.0)},
            {"dlperf", o.value("dlperf", 0.0)},
            {"dlperf_per_dphtotal", o.value("dlperf_per_dphtotal", 0.0)},
            {"reliability", o.value("reliability", 0.0)},
            {"inet_down", o.value("inet_down", 0.0)},
            {"inet_up", o.value("inet_up", 0.0)},
            {"storage_cost", o.value("storage_cost", 0.0)},
            {"geolocation", o.value("geolocation", std::string())},
            {"session", session_json(r.session)}};
}

void print_table(const std::vector<Row> &rows, const OffersArgs &a) {
    std::printf("%-10s %-6s %-18s %2s %6s %8s %7s %8s %6s %11s %8s %-16s %s\n", "ID", "PROV", "GPU",
                "N", "VRAM", "$/HR", "DLPERF", "DLP/$", "REL", "NET DN/UP", "$/GB-MO", "LOCATION",
                "SESSION $ (rent+storage+transfer)");
    for (const auto &r : rows) {
        const auto &o = r.raw;
        std::string loc = o.value("geolocation", std::string());
        if (loc.size() > 16) loc = loc.substr(loc.size() - 16);
        std::string session = num(r.session.total(), "%.3f") + " (" + num(r.session.rent, "%.3f") +
                              "+" + num(r.session.storage, "%.3f") + "+" +
                              num(r.session.transfer, "%.3f") + ")";
        std::printf(
            "%-10s %-6s %-18.18s %2d %6.1f %8.4f %7.1f %8.1f %5.1f%% %5.0f/%-5.0f %8.3f "
            "%-16s %s\n",
            id_of(o).c_str(), r.provider.c_str(), o.value("gpu_name", std::string()).c_str(),
            o.value("num_gpus", 0), o.value("gpu_ram", 0.0) / 1000.0, o.value("dph_total", 0.0),
            o.value("dlperf", 0.0), o.value("dlperf_per_dphtotal", 0.0),
            o.value("reliability", 0.0) * 100, o.value("inet_down", 0.0), o.value("inet_up", 0.0),
            o.value("storage_cost", 0.0), loc.c_str(), session.c_str());
    }
    say(std::to_string(rows.size()) + " offer(s); session: " + num(a.hours, "%.4g") + " h, " +
        num(a.disk, "%.4g") + " GB disk, " + num(a.download, "%.4g") + " GB down, " +
        num(a.upload, "%.4g") + " GB up (`--explain ID` shows the arithmetic)");
}

void run(Context &ctx, const OffersArgs &a) {
    if (a.provider != "vast" && a.provider != "local" && a.provider != "all")
        throw Abort(Error{"unknown provider '" + a.provider + "'", "use vast, local or all", 2});
    offers::SearchRequest sr{
        str::join(a.query, " "), a.no_default, a.sort, a.type, a.limit, a.disk};
    if (!a.explain.empty()) sr.query += " id=" + a.explain;
    auto body = must(offers::build_search(sr));
    auto rows = collect(ctx, a, body);
    if (a.provider == "all") rank(rows, a.sort);
    if (!a.explain.empty()) {
        auto it = std::find_if(rows.begin(), rows.end(),
                               [&](const Row &r) { return id_of(r.raw) == a.explain; });
        if (it == rows.end())
            throw Abort(Error{"no offer " + a.explain + " matches", "see `berth offers`"});
        if (ctx.json)
            print_json({{"schema", "berth.offers.explain/1"},
                        {"provider", it->provider},
                        {"offer", it->raw},
                        {"session", session_json(it->session)}});
        else
            explain(*it, a);
        return;
    }
    if (ctx.json) {
        nlohmann::json arr = nlohmann::json::array();
        for (const auto &r : rows)
            arr.push_back(row_json(r));
        print_json({{"schema", "berth.offers/1"}, {"query", body}, {"offers", arr}});
        return;
    }
    print_table(rows, a);
}

} // namespace

void add_offers(CLI::App &app, Context &ctx) {
    auto *o = app.add_subcommand(
        "offers", "find and rank offers; every price split into rent, storage and transfer");
    static OffersArgs a;
    o->add_option("QUERY", a.query,
                  "vastai query language, e.g. 'num_gpus=1 gpu_ram>=16 reliability>0.98'");
    o->add_option("--sort,-o", a.sort, "sort keys, e.g. dph+ or dlperf_per_dphtotal-")
        ->capture_default_str();
    o->add_option("--provider", a.provider, "vast, local or all")->capture_default_str();
    o->add_option("--type", a.type, "on-demand, bid (interruptible) or reserved")
        ->capture_default_str();
    o->add_option("--limit", a.limit, "at most this many offers (sent to the API)")
        ->capture_default_str();
    o->add_flag("--no-default,-n", a.no_default,
                "drop the default filters (verified, rentable, not rented)");
    o->add_option("--hours", a.hours, "planned session length, for the session total")
        ->capture_default_str();
    o->add_option("--disk", a.disk, "GB of disk to allocate")->capture_default_str();
    o->add_option("--download", a.download, "GB you will download to the machine")
        ->capture_default_str();
    o->add_option("--upload", a.upload, "GB you will upload from it")->capture_default_str();
    o->add_option("--explain", a.explain, "show the arithmetic for one offer id");
    o->add_option("--api-key", a.api_key,
                  "Vast.ai API key (default: VAST_API_KEY or ~/.config/vastai/vast_api_key)");
    o->callback([&ctx] { run(ctx, a); });
}

} // namespace berth::cli
