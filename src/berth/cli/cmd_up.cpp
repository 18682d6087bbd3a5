// berth up | start | stop | destroy: the life of a machine.
#include "cli/commands.hpp"
#include "core/cost.hpp"
#include "engine/ledger.hpp"
#include "engine/lifecycle.hpp"
#include "engine/retry.hpp"
#include "engine/workspace.hpp"
#include "offers/query.hpp"
#include "provider/vast/vast_api.hpp"
#include "store/repository.hpp"
#include "util/strings.hpp"
#include "util/term.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace berth::cli {

StateDb open_state() {
    return must(StateDb::open(state_db_path()));
}

nlohmann::json instance_json(const InstanceRecord &r) {
    auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
    return {
        {"name", r.name},
        {"provider", r.provider},
        {"status", status_name(r.status)},
        {"message", r.message},
        {"ssh",
         {{"alias", "berth-" + r.name},
          {"host", r.ssh_host},
          {"port", r.ssh_port},
          {"user", r.ssh_user}}},
        {"jupyter",
         {{"url", r.tunnel_port ? Engine::jupyter_url(r) : ""}, {"remote_port", r.jupyter_port}}},
        {"max_hours", spec.is_object() ? spec.value("max_hours", 0.0) : 0.0},
        {"provider_id", r.provider_id},
        {"created_at", r.created_at},
        {"updated_at", r.updated_at}};
}

namespace {

// Progress lines on stderr: a spinner-free log a person can read, and nothing under --json.
ProgressFn progress_for(const Context &ctx) {
    auto start = std::chrono::steady_clock::now();
    return [json = ctx.json, start](const std::string &msg) {
        if (json) return;
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        char t[16];
        std::snprintf(t, sizeof t, "%5.1fs", s);
        std::cerr << term::paint(t, term::Color::dim, 2) << " " << msg << std::endl;
    };
}

void print_ready(const Context &ctx, const InstanceRecord &r, const char *verb, double seconds) {
    if (ctx.json) {
        auto j = instance_json(r);
        j["schema"] = "berth.instance/1";
        j["seconds"] = seconds;
        print_json(j);
        return;
    }
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f s", seconds);
    say(term::paint("berth: '" + r.name + "' is " + verb, term::Color::green) + " (" + r.provider +
        ", " + secs + ")");
    say("  ssh       berth ssh " + r.name + "      (or `ssh berth-" + r.name +
        "` after `berth ssh-config`)");
    say("  jupyter   " + Engine::jupyter_url(r));
    if (r.provider == "vast")
        say("  storage   /workspace (kept until destroy; your environment persists in "
            "/workspace/.berth)");
    else
        say("  storage   /storage (kept across machines), /notebooks (kept until destroy)");
    auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
    double h = spec.is_object() ? spec.value("max_hours", 0.0) : 0.0;
    if (h > 0) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "  stops     by itself after %.4g h (--max-hours)", h);
        say(buf);
    }
    say("  stop      berth stop " + r.name + "        destroy: berth destroy " + r.name);
}

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

// The destroy guard: refuses while the instance holds work newer than its last snapshot.
void guard_unsaved(const InstanceRecord &r, const std::string &repo_flag) {
    auto path = repo_flag.empty() ? store::default_repo() : std::filesystem::path(repo_flag);
    auto repo = store::Repository::open(path, false); // none yet: nothing was ever saved
    auto u = unsaved_work(repo ? &*repo : nullptr, r);
    if (!u) throw Abort(Error{u.error().what, u.error().fix});
    if (u->changed.empty()) return;
    throw Abort(Error{"'" + r.name + "' holds work no snapshot has: " + describe_unsaved(*u),
                      "`berth save " + r.name + "` first, or `berth destroy " + r.name +
                          " --force` to lose it"});
}

namespace {

struct VastUpArgs {
    std::string offer, query, image = "fastdotai/fastai-course", type = "on-demand", api_key;
    double disk = 10, bid = -1, hours = 0;
};

// --query: the best offer by DLPerf per dollar among those the query matches.
nlohmann::json pick_offer(const VastUpArgs &a, const vast::Credentials &c) {
    offers::SearchRequest sr{a.query, false, "dlperf_per_dphtotal-", a.type, 1, a.disk};
    auto body = must(offers::build_search(sr));
    auto r = must(send_with_retry(vast::search_request(c, body)));
    auto found = must(vast::parse_search(r));
    if (found.empty())
        throw Abort(Error{"no Vast.ai offer matches '" + a.query + "'",
                          "loosen the query; `berth offers '" + a.query + "'` shows what matches",
                          2});
    return found.front();
}

nlohmann::json offer_by_id(const std::string &id, const vast::Credentials &c) {
    nlohmann::json body{{"id", {{"eq", std::atoll(id.c_str())}}}, {"limit", 1}};
    auto r = must(send_with_retry(vast::search_request(c, body)));
    auto found = must(vast::parse_search(r));
    if (found.empty())
        throw Abort(
            Error{"no Vast.ai offer " + id, "it may be rented already; see `berth offers`", 2});
    return found.front();
}

// Before renting: the offer, the bid pitfall, and whether the credit covers the session.
void prepare_vast(Context &ctx, UpRequest &req, VastUpArgs &a) {
    if (a.offer.empty() == a.query.empty())
        throw Abort(Error{"say which offer to rent", "pass --offer ID or --query '...'", 2});
    if (!a.offer.empty() && a.offer.find_first_not_of("0123456789") != std::string::npos)
        throw Abort(Error{"bad offer id '" + a.offer + "'", "offer ids are numbers", 2});
    if (a.type == "interruptible") a.type = "bid";
    if (a.type == "bid" && a.bid < 0)
        throw Abort(Error{"--type bid needs --bid PRICE",
                          "without a price the API silently rents on-demand at the full price", 2});
    auto creds = must(vast::load_credentials(a.api_key));
    auto offer = a.offer.empty() ? pick_offer(a, creds) : offer_by_id(a.offer, creds);
    req.offer_id = std::to_string(offer.value("id", 0LL));
    req.image = a.image;
    req.disk_gb = a.disk;
    req.api_key = a.api_key;
    if (a.bid >= 0) req.bid = a.bid;
    double rent = a.bid >= 0 ? a.bid : offer.value("dph_base", 0.0);
    double hours = a.hours > 0 ? a.hours : (req.max_hours > 0 ? req.max_hours : 1.0);
    auto plan = cost::estimate({rent, offer.value("storage_cost", 0.0), 0, 0},
                               {hours, hours, a.disk, 0, 0});
    char line[200];
    std::snprintf(line, sizeof line,
                  "renting offer %s: %d x %s, $%.4f/h rent + $%.4f/h storage; %.4g h = $%.4f",
                  req.offer_id.c_str(), offer.value("num_gpus", 0),
                  offer.value("gpu_name", std::string("?")).c_str(), rent, plan.storage / hours,
                  hours, plan.total());
    if (!ctx.json) std::cerr << line << std::endl;
    auto p = must(make_provider("vast", {a.api_key}));
    auto credit = p->credit();
    if (credit && *credit && **credit < plan.total()) {
        char w[200];
        std::snprintf(w, sizeof w,
                      "the planned %.4g h ($%.2f) would run the credit out ($%.2f left): Vast "
                      "stops instances at a zero balance",
                      hours, plan.total(), **credit);
        warn(w);
    }
}

} // namespace

void add_up(CLI::App &app, Context &ctx) {
    auto *up = app.add_subcommand("up", "create a machine and wait until SSH and Jupyter answer");
    static std::string name = "workspace", provider = "local";
    static double max_hours = 0, timeout = 180;
    static VastUpArgs va;
    up->add_option("NAME", name, "instance name")->capture_default_str();
    up->add_option("--provider", provider, "where: local or vast")->capture_default_str();
    up->add_option("--max-hours", max_hours, "the machine stops itself after H hours (0: never)")
        ->check(CLI::NonNegativeNumber);
    up->add_option("--timeout", timeout, "seconds to wait for it to be ready")
        ->capture_default_str();
    up->add_option("--offer", va.offer, "vast: the offer id to rent (see `berth offers`)");
    up->add_option("--query", va.query, "vast: rent the best DLPerf/$ offer matching this query");
    up->add_option("--image", va.image, "vast: the container image")->capture_default_str();
    up->add_option("--disk", va.disk, "vast: GB of disk")->capture_default_str();
    up->add_option("--bid", va.bid, "vast: interruptible, bidding $/h for the whole machine");
    up->add_option("--type", va.type, "vast: on-demand or bid (with --query)")
        ->capture_default_str();
    up->add_option("--hours", va.hours,
                   "vast: planned session length, checked against the credit (default "
                   "--max-hours, else 1)");
    up->add_option("--api-key", va.api_key,
                   "Vast.ai API key (default: VAST_API_KEY or ~/.config/vastai/vast_api_key)");
    up->callback([&ctx] {
        auto t0 = std::chrono::steady_clock::now();
        UpRequest req{name, provider, max_hours, std::chrono::seconds(static_cast<long>(timeout))};
        if (provider == "vast")
            prepare_vast(ctx, req, va);
        else if (!va.offer.empty() || !va.query.empty() || va.bid >= 0)
            throw Abort(Error{"--offer, --query and --bid are for rented machines",
                              "add --provider vast", 2});
        auto db = open_state();
        Engine e(db, progress_for(ctx));
        auto r = must(e.up(req));
        print_ready(ctx, r, "up", since(t0));
    });

    auto *st = app.add_subcommand("start", "start a stopped machine (persistence is restored)");
    static std::string start_name;
    st->add_option("NAME", start_name)->required();
    st->callback([&ctx] {
        auto t0 = std::chrono::steady_clock::now();
        auto db = open_state();
        Engine e(db, progress_for(ctx));
        auto r = must(e.start(start_name, std::chrono::seconds(180)));
        print_ready(ctx, r, "running", since(t0));
    });

    auto *sp =
        app.add_subcommand("stop", "stop a machine: its ephemeral disk and $HOME are discarded");
    static std::string stop_name;
    sp->add_option("NAME", stop_name)->required();
    sp->callback([&ctx] {
        auto db = open_state();
        Engine e(db, progress_for(ctx));
        auto r = must(e.stop(stop_name));
        if (ctx.json) {
            auto j = instance_json(r);
            j["schema"] = "berth.instance/1";
            print_json(j);
        } else {
            say("berth: '" + r.name + "' stopped; " +
                (r.provider == "vast" ? std::string("/workspace is kept and bills storage")
                                      : std::string("/storage and /notebooks are kept")) +
                " (`berth start " + r.name + "`)");
        }
    });

    auto *d = app.add_subcommand("destroy",
                                 "remove a machine and its /notebooks (your /storage is kept)");
    static std::string destroy_name;
    static bool yes = false, force = false;
    static std::string guard_repo;
    d->add_option("NAME", destroy_name)->required();
    d->add_flag("-y,--yes", yes, "do not ask for confirmation");
    d->add_flag("--force", force, "destroy even if it holds work no snapshot has");
    d->add_option("--repo", guard_repo,
                  "the repository its snapshots are in (default $XDG_DATA_HOME/berth/repo)");
    d->callback([&ctx] {
        auto db = open_state();
        Engine e(db, progress_for(ctx));
        auto rec = e.refresh(must(e.find(destroy_name)));
        if (!force) guard_unsaved(rec, guard_repo);
        if (!yes) {
            if (!::isatty(0))
                throw Abort(Error{"destroy needs confirmation",
                                  "pass -y to destroy '" + destroy_name + "' without asking", 2});
            std::cerr << "destroy '" << destroy_name
                      << "' and its /notebooks? /storage is kept. [y/N] " << std::flush;
            std::string answer;
            std::getline(std::cin, answer);
            if (answer != "y" && answer != "yes") throw Abort(Error{"not destroyed", "", 1});
        }
        must(e.destroy(destroy_name));
        if (ctx.json)
            print_json(
                {{"schema", "berth.destroy/1"}, {"name", destroy_name}, {"status", "destroyed"}});
        else
            say("berth: '" + destroy_name + "' destroyed" +
                (rec.provider == "local" ? "; /storage kept" : "; nothing bills any more"));
    });
}

void add_account(CLI::App &app, Context &ctx) {
    auto *a = app.add_subcommand(
        "account", "money: the provider's credit, what berth's machines cost, hours left");
    static std::string provider = "vast", api_key;
    a->add_option("--provider", provider, "vast")->capture_default_str();
    a->add_option("--api-key", api_key, "Vast.ai API key (default: VAST_API_KEY or the key file)");
    a->callback([&ctx] {
        auto db = open_state();
        Engine e(db, [](const std::string &) {});
        // Fresh states first: a machine that stopped itself stops its rent meter.
        for (auto &r : must(db.list()))
            if (r.status != Status::destroyed) (void)e.refresh(r);
        double now = epoch_now();
        auto ledger = summarize(must(db.meters()), now);
        auto p = must(make_provider(provider, {api_key}));
        auto credit = must(p->credit());
        // The provider's view of the burn: every machine of the account, berth's or not.
        double burn = 0;
        auto machines = p->list();
        if (machines)
            for (const auto &m : *machines) {
                if (m.state == MachineState::running) burn += m.rent_per_hour;
                if (m.state != MachineState::gone) burn += m.storage_per_hour;
            }
        double hours_left = credit && burn > 0 ? *credit / burn : -1;
        if (ctx.json) {
            nlohmann::json rows = nlohmann::json::array();
            for (const auto &l : ledger.entries)
                if (l.provider == provider)
                    rows.push_back({{"instance", l.instance},
                                    {"provider_id", l.provider_id},
                                    {"rent", l.rent},
                                    {"storage", l.storage},
                                    {"transfer", l.transfer},
                                    {"total", l.total()},
                                    {"burn_per_hour", l.burn_per_hour}});
            double spent = 0;
            for (const auto &l : ledger.entries)
                if (l.provider == provider) spent += l.total();
            print_json(
                {{"schema", "berth.account/1"},
                 {"provider", provider},
                 {"credit", credit ? nlohmann::json(*credit) : nlohmann::json()},
                 {"burn_per_hour", burn},
                 {"hours_left", hours_left >= 0 ? nlohmann::json(hours_left) : nlohmann::json()},
                 {"ledger_total", spent},
                 {"ledger", rows}});
            return;
        }
        char line[160];
        if (credit) {
            std::snprintf(line, sizeof line, "credit      $%.2f", *credit);
            say(line);
        }
        std::snprintf(line, sizeof line,
                      "burn rate   $%.4f/h (running: rent + storage; stopped: "
                      "storage)",
                      burn);
        say(line);
        if (hours_left >= 0) {
            std::snprintf(line, sizeof line, "hours left  %.1f h at this rate", hours_left);
            say(term::paint(line, hours_left < 2 ? term::Color::red : term::Color::green));
        } else {
            say("hours left  - (nothing bills now)");
        }
        say("");
        std::printf("%-16s %-10s %12s %12s %12s %12s %10s\n", "INSTANCE", "ID", "RENT $",
                    "STORAGE $", "TRANSFER $", "TOTAL $", "$/H NOW");
        double spent = 0;
        for (const auto &l : ledger.entries) {
            if (l.provider != provider) continue;
            spent += l.total();
            std::printf("%-16s %-10s %12.6f %12.6f %12.6f %12.6f %10.4f\n", l.instance.c_str(),
                        l.provider_id.c_str(), l.rent, l.storage, l.transfer, l.total(),
                        l.burn_per_hour);
        }
        std::printf("%-27s %51.6f\n", "berth's ledger, total", spent);
    });
}

} // namespace berth::cli
