// berth offers: find and rank machines across providers, priced by the one cost model.
#include "cli/commands.hpp"
#include "cli/providers.hpp"
#include "core/cost.hpp"
#include "offers/filter.hpp"
#include "offers/query.hpp"
#include "util/strings.hpp"
#include "util/term.hpp"

#include <algorithm>
#include <cstdio>

namespace berth::cli {

namespace {

struct OffersArgs {
    std::vector<std::string> query;
    std::string sort = "score-", provider = "all", type = "on-demand", explain;
    double hours = 1, disk = 10, download = 0, upload = 0;
    int limit = 50;
    bool no_default = false;
    FlagValues flags; // provider options (credentials)
};

struct Row {
    Offer offer;
    cost::Breakdown session;
};

cost::Breakdown session_cost(const Offer &o, const OffersArgs &a) {
    cost::Rates r{o.price_per_hour, o.storage_per_gb_month, o.transfer_down_per_gb,
                  o.transfer_up_per_gb};
    return cost::estimate(r, {a.hours, a.hours, a.disk, a.download, a.upload});
}

// One provider's offers that pass the query: its own search where it filters itself, else
// the neutral filter here, then its session price.
Result<std::vector<Row>> provider_rows(Context &ctx, const ProviderRow &row, const OffersArgs &a,
                                       const nlohmann::json &body) {
    auto p = registry(ctx).make(row.name, provider_options(ctx, row, a.flags, true));
    if (!p) return tl::unexpected(p.error());
    auto got = (*p)->offers(body);
    if (!got) return tl::unexpected(got.error());
    auto filter = offers::filter_of(body);
    std::vector<Row> rows;
    for (auto &o : *got) {
        if (!row.capabilities.filters_offers && !offers::matches(filter, o.fields())) continue;
        Row r{std::move(o), {}};
        r.session = session_cost(r.offer, a);
        rows.push_back(std::move(r));
    }
    return rows;
}

std::string num(double v, const char *fmt) {
    char buf[32];
    std::snprintf(buf, sizeof buf, fmt, v);
    return buf;
}

void explain(const Row &r, const OffersArgs &a) {
    const auto &o = r.offer;
    say("offer " + o.id + " on " + o.provider + ": " + std::to_string(o.gpu_count) + "x " +
        o.gpu_name);
    say("  rent      " + num(o.price_per_hour, "$%.4f") + "/hr x " + num(a.hours, "%.4g") +
        " h = " + num(r.session.rent, "$%.4f") + (o.interruptible ? "   (the minimum bid)" : ""));
    say("  storage   " + num(o.storage_per_gb_month, "$%.4f") + "/GB-month x " +
        num(a.disk, "%.4g") + " GB / 720 h x " + num(a.hours, "%.4g") + " h = " +
        num(r.session.storage, "$%.4f") + "   (billed while the instance exists, stopped too)");
    say("  transfer  " + num(o.transfer_down_per_gb, "$%.4f") + "/GB x " + num(a.download, "%.4g") +
        " GB down + " + num(o.transfer_up_per_gb, "$%.4f") + "/GB x " + num(a.upload, "%.4g") +
        " GB up = " + num(r.session.transfer, "$%.4f"));
    say("  total     " + num(r.session.total(), "$%.4f") + " for the session");
}

nlohmann::json session_json(const cost::Breakdown &b) {
    return {
        {"rent", b.rent}, {"storage", b.storage}, {"transfer", b.transfer}, {"total", b.total()}};
}

// Offers from every provider asked for. Under `all`, a provider that cannot answer (no
// credentials, down) is skipped with a warning; asked for by name, it is an error.
std::vector<Row> collect(Context &ctx, const OffersArgs &a, const nlohmann::json &body) {
    std::vector<Row> rows;
    bool all = a.provider == "all";
    std::vector<const ProviderRow *> which;
    if (all)
        for (const auto &r : registry(ctx).rows())
            which.push_back(&r);
    else
        which.push_back(must(registry(ctx).find(a.provider)));
    for (const auto *row : which) {
        auto got = provider_rows(ctx, *row, a, body);
        if (!got) {
            if (!all) throw Abort(got.error());
            if (!ctx.json) warn(row->name + " offers skipped: " + got.error().line());
            continue;
        }
        rows.insert(rows.end(), std::make_move_iterator(got->begin()),
                    std::make_move_iterator(got->end()));
    }
    return rows;
}

// One ranking across providers: the sort keys, on the shared field names.
void rank(std::vector<Row> &rows, const std::string &sort) {
    auto order = must(offers::parse_order(sort));
    if (order.empty()) return;
    std::vector<std::pair<nlohmann::json, std::size_t>> keyed;
    for (std::size_t i = 0; i < rows.size(); ++i)
        keyed.push_back({rows[i].offer.fields(), i});
    auto value = [](const nlohmann::json &f, const std::string &k) {
        auto it = f.find(k);
        return it != f.end() && it->is_number() ? it->get<double>() : 0.0;
    };
    std::stable_sort(keyed.begin(), keyed.end(), [&](const auto &x, const auto &y) {
        for (const auto &k : order) {
            std::string key = k[0];
            double p = value(x.first, key), q = value(y.first, key);
            if (p != q) return k[1] == "desc" ? p > q : p < q;
        }
        return false;
    });
    std::vector<Row> out;
    out.reserve(rows.size());
    for (auto &[f, i] : keyed)
        out.push_back(std::move(rows[i]));
    rows = std::move(out);
}

nlohmann::json row_core(const Row &r);

nlohmann::json row_json(const Row &r) {
    const auto &o = r.offer;
    auto j = row_core(r);
    // The machine's size, where the provider says (Vast's and an SSH host's own words).
    for (const char *k : {"cpu_cores", "cpu_ram", "disk_space"})
        if (o.raw.is_object() && o.raw.contains(k) && o.raw[k].is_number()) j[k] = o.raw[k];
    return j;
}

nlohmann::json row_core(const Row &r) {
    const auto &o = r.offer;
    return {{"provider", o.provider},
            {"id", o.raw.is_object() && o.raw.contains("id") ? o.raw["id"] : nlohmann::json(o.id)},
            {"gpu_name", o.gpu_name},
            {"num_gpus", o.gpu_count},
            {"vram_gb", o.vram_gb},
            {"dph_total", o.total_per_hour},
            {"dlperf", o.dlperf},
            {"dlperf_per_dphtotal", o.dlperf_per_dollar},
            {"reliability", o.reliability},
            {"inet_down", o.inet_down_mbps},
            {"inet_up", o.inet_up_mbps},
            {"storage_cost", o.storage_per_gb_month},
            {"geolocation", o.location},
            {"session", session_json(r.session)}};
}

void print_table(const std::vector<Row> &rows, const OffersArgs &a) {
    std::printf("%-10s %-6s %-18s %2s %6s %8s %7s %8s %6s %11s %8s %-16s %s\n", "ID", "PROV", "GPU",
                "N", "VRAM", "$/HR", "DLPERF", "DLP/$", "REL", "NET DN/UP", "$/GB-MO", "LOCATION",
                "SESSION $ (rent+storage+transfer)");
    for (const auto &r : rows) {
        const auto &o = r.offer;
        std::string loc = o.location;
        if (loc.size() > 16) loc = loc.substr(loc.size() - 16);
        std::string session = num(r.session.total(), "%.3f") + " (" + num(r.session.rent, "%.3f") +
                              "+" + num(r.session.storage, "%.3f") + "+" +
                              num(r.session.transfer, "%.3f") + ")";
        std::printf("%-10s %-6s %-18.18s %2d %6.1f %8.4f %7.1f %8.1f %5.1f%% %5.0f/%-5.0f %8.3f "
                    "%-16s %s\n",
                    o.id.c_str(), o.provider.c_str(), o.gpu_name.c_str(), o.gpu_count, o.vram_gb,
                    o.total_per_hour, o.dlperf, o.dlperf_per_dollar, o.reliability * 100,
                    o.inet_down_mbps, o.inet_up_mbps, o.storage_per_gb_month, loc.c_str(),
                    session.c_str());
    }
    say(std::to_string(rows.size()) + " offer(s); session: " + num(a.hours, "%.4g") + " h, " +
        num(a.disk, "%.4g") + " GB disk, " + num(a.download, "%.4g") + " GB down, " +
        num(a.upload, "%.4g") + " GB up (`--explain ID` shows the arithmetic)");
}

void run(Context &ctx, const OffersArgs &a) {
    if (a.provider != "all") must(registry(ctx).find(a.provider));
    offers::SearchRequest sr{
        str::join(a.query, " "), a.no_default, a.sort, a.type, a.limit, a.disk};
    if (!a.explain.empty()) sr.query += " id=" + a.explain;
    auto body = must(offers::build_search(sr));
    auto rows = collect(ctx, a, body);
    // Across providers, and for a provider that does not search server-side, berth ranks.
    if (a.provider == "all" || !must(registry(ctx).find(a.provider))->capabilities.filters_offers)
        rank(rows, a.sort);
    if (a.limit > 0 && rows.size() > static_cast<std::size_t>(a.limit)) rows.resize(a.limit);
    if (!a.explain.empty()) {
        auto it = std::find_if(rows.begin(), rows.end(),
                               [&](const Row &r) { return r.offer.id == a.explain; });
        if (it == rows.end())
            throw Abort(Error{"no offer " + a.explain + " matches", "see `berth offers`"});
        if (ctx.json)
            print_json({{"schema", "berth.offers.explain/1"},
                        {"provider", it->offer.provider},
                        {"offer", it->offer.raw.is_object() ? it->offer.raw : it->offer.fields()},
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
    auto *o = command(app, "offers");
    static OffersArgs a;
    o->add_option("QUERY", a.query,
                  "vastai query language, e.g. 'num_gpus=1 gpu_ram>=16 reliability>0.98'");
    o->add_option("--sort,-o", a.sort, "sort keys, e.g. dph+ or dlperf_per_dphtotal-")
        ->capture_default_str();
    o->add_option("--provider", a.provider, "a provider, or all")->capture_default_str();
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
    add_provider_flags(o, a.flags, true);
    o->callback([&ctx] { run(ctx, a); });
}

} // namespace berth::cli
