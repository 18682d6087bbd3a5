// berth up | start | stop | destroy: the life of a machine.
#include "cli/commands.hpp"
#include "cli/providers.hpp"
#include "cli/repo_open.hpp"
#include "core/cost.hpp"
#include "core/json_read.hpp"
#include "engine/idle.hpp"
#include "engine/ledger.hpp"
#include "engine/lifecycle.hpp"
#include "engine/workspace.hpp"
#include "store/repository.hpp"
#include "util/interrupt.hpp"
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
        {"idle_seconds", jsonr::integer(idle_spec(r), "seconds")},
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

Capabilities caps_of(const Context &ctx, const InstanceRecord &r) {
    auto row = registry(ctx).find(r.provider);
    return row ? (*row)->capabilities : Capabilities{};
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
    if (Engine::host_of(r).user_ssh)
        say("  ssh       berth ssh " + r.name + "      (or your own `ssh " + r.ssh_host +
            "`: the work directory is " + Engine::host_of(r).workdir + ")");
    else
        say("  ssh       berth ssh " + r.name + "      (or `ssh berth-" + r.name +
            "` after `berth ssh-config`)");
    say("  jupyter   " + Engine::jupyter_url(r));
    auto caps = caps_of(ctx, r);
    if (!caps.storage_note.empty()) say("  storage   " + caps.storage_note);
    auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
    double h = spec.is_object() ? spec.value("max_hours", 0.0) : 0.0;
    if (h > 0) {
        char buf[96];
        std::snprintf(buf, sizeof buf, "  stops     by itself after %.4g h (--max-hours)", h);
        say(buf);
    }
    long idle_s = static_cast<long>(jsonr::integer(idle_spec(r), "seconds"));
    if (idle_s > 0)
        say("  idle      stops itself after " + idle::format_duration(idle_s) +
            " without activity (`berth idle " + r.name + " off`, `berth hold " + r.name + "`)");
    if (caps.can_stop)
        say("  stop      berth stop " + r.name + "        destroy: berth destroy " + r.name);
    else
        say("  end       berth destroy " + r.name + " (" + caps.stop_note + ")");
}

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace

// --from: a snapshot id, or latest = the newest saved from an instance called `name`.
Result<store::Snapshot> snapshot_for_up(store::RepoStore &repo, const std::string &ref,
                                        const std::string &name) {
    if (ref != "latest") {
        auto s = repo.find_snapshot(ref);
        if (s && s->paths.empty())
            return fail("snapshot " + s->id + " is of a directory, not of a machine",
                        "`berth restore " + s->id + " NAME:/path` puts it on a machine", 2);
        return s;
    }
    auto scan = repo.scan_snapshots();
    std::optional<store::Snapshot> best;
    for (const auto &s : scan.good)
        if ((s.instance == name || s.source.rfind(name + ":/", 0) == 0) && !s.paths.empty() &&
            (!best || s.time > best->time))
            best = s;
    if (!best)
        return fail("no snapshot of an instance named '" + name + "' in " + repo.location(),
                    "see `berth snapshots`, and pass --from ID", 2);
    return *best;
}

// The destroy guard: refuses while the instance holds work newer than its last snapshot.
void guard_unsaved(const Context &ctx, const InstanceRecord &r, const std::string &repo_flag) {
    // The repository it was last saved to, unless told otherwise.
    auto rec_spec = nlohmann::json::parse(r.spec_json, nullptr, false);
    std::string saved_to =
        rec_spec.is_object() ? rec_spec.value("saved_to", std::string()) : std::string();
    std::string spec = !repo_flag.empty()  ? repo_flag
                       : !saved_to.empty() ? saved_to
                                           : ctx.config.str("repo");
    auto loc =
        must(store::parse_repo_location(spec.empty() ? store::default_repo().string() : spec));
    // None there (or unreachable): nothing counts as saved, so the guard refuses.
    auto repo = try_open_repo(loc, false);
    auto p = must(registry(ctx).make(r.provider));
    auto u = unsaved_work(repo ? repo->get() : nullptr, r, *p);
    if (!u) throw Abort(Error{u.error().what, u.error().fix});
    if (u->changed.empty()) return;
    throw Abort(Error{"'" + r.name + "' holds work no snapshot has: " + describe_unsaved(*u),
                      "`berth save " + r.name + "` first, or `berth destroy " + r.name +
                          " --force` to lose it"});
}

void add_up(CLI::App &app, Context &ctx) {
    auto *up = command(app, "up");
    static std::string name = "workspace", provider;
    static double max_hours = 0, timeout = 180;
    static FlagValues flags;
    up->add_option("NAME", name, "instance name")->capture_default_str();
    up->add_option("--provider", provider,
                   "where: " + str::join(builtin_registry().names(), ", ") +
                       " (default: config `provider`, else local)");
    up->add_option("--max-hours", max_hours, "the machine stops itself after H hours (0: never)")
        ->check(CLI::NonNegativeNumber);
    up->add_option("--timeout", timeout, "seconds to wait for it to be ready")
        ->capture_default_str();
    static std::string idle_arg;
    up->add_option("--idle", idle_arg,
                   "stop it after this long without activity: 45m, 2h, off (default: config "
                   "`idle`, else 60m where billed, off on local)");
    static std::string from, up_repo;
    up->add_option("--from", from,
                   "restore this snapshot's work and environment onto the new machine (an id, "
                   "or latest: the newest saved from an instance of this NAME)");
    up->add_option("--repo", up_repo, "the repository --from reads (default: config `repo`)");
    add_provider_flags(up, flags);
    up->callback([&ctx] {
        auto t0 = std::chrono::steady_clock::now();
        std::string prov = provider.empty() ? ctx.config.str("provider") : provider;
        const auto &reg = registry(ctx);
        const auto *row = must(reg.find(prov));
        // The snapshot first: no machine is rented for a snapshot that is not there.
        std::unique_ptr<store::RepoStore> repo;
        std::optional<store::Snapshot> snap;
        if (!from.empty()) {
            std::string where = !up_repo.empty() ? up_repo : ctx.config.str("repo");
            repo = open_repo(where, false);
            snap = must(snapshot_for_up(*repo, from, name));
            if (!snap->provider.empty() && snap->provider != prov)
                throw Abort(Error{"snapshot " + snap->id + " was saved from a " + snap->provider +
                                      " machine; restoring it onto " + prov +
                                      " is not supported yet (their paths differ)",
                                  "pick a snapshot saved on " + prov, 2});
        }
        UpRequest req{name, prov, max_hours, std::chrono::seconds(static_cast<long>(timeout)),
                      provider_options(ctx, *row, flags)};
        std::string idle_text = !idle_arg.empty() ? idle_arg : ctx.config.str("idle");
        if (!idle_text.empty()) req.idle_seconds = must(idle::parse_duration(idle_text));
        req.idle_thresholds.cpu_percent = ctx.config.number("idle.cpu_percent");
        req.idle_thresholds.network_kbps = ctx.config.number("idle.network_kbps");
        req.idle_thresholds.gpu_percent = ctx.config.number("idle.gpu_percent");
        auto db = open_state();
        interrupt::install(); // from here an interrupt finishes or undoes, then exits 130
        Engine e(db, reg, progress_for(ctx));
        auto r = must(e.up(req, [&ctx](const UpPlan &plan) {
            if (ctx.json) return;
            for (const auto &n : plan.notes)
                std::cerr << n << std::endl;
            for (const auto &w : plan.warnings)
                warn(w);
        }));
        if (snap) {
            progress_for(ctx)("restoring snapshot " + snap->id + " (" +
                              std::to_string(snap->files) + " files, " +
                              str::human_bytes(snap->bytes) + ") onto '" + r.name + "'");
            std::string where = !up_repo.empty() ? up_repo : ctx.config.str("repo");
            auto loc =
                store::parse_repo_location(where.empty() ? store::default_repo().string() : where);
            auto direct = loc ? machine_access(*loc) : std::nullopt;
            if (direct) fill_direct_key(*direct, where, repo.get());
            auto st = restore_onto_new(*repo, *snap, r, row->capabilities, !ctx.json && ::isatty(2),
                                       direct ? &*direct : nullptr);
            if (!st)
                throw Abort(Error{"'" + r.name + "' is up, but snapshot " + snap->id +
                                      " was not restored onto it: " + st.error().what,
                                  "`berth restore " + snap->id + " " + r.name +
                                      "` retries; or `berth destroy " + r.name + "`"});
        }
        print_ready(ctx, r, "up", since(t0));
    });

    auto *st = command(app, "start");
    static std::string start_name;
    st->add_option("NAME", start_name)->required();
    st->callback([&ctx] {
        auto t0 = std::chrono::steady_clock::now();
        auto db = open_state();
        Engine e(db, registry(ctx), progress_for(ctx));
        auto r = must(e.start(start_name, std::chrono::seconds(180)));
        print_ready(ctx, r, "running", since(t0));
    });

    auto *sp = command(app, "stop");
    static std::string stop_name;
    sp->add_option("NAME", stop_name)->required();
    sp->callback([&ctx] {
        auto db = open_state();
        Engine e(db, registry(ctx), progress_for(ctx));
        auto r = must(e.stop(stop_name));
        if (ctx.json) {
            auto j = instance_json(r);
            j["schema"] = "berth.instance/1";
            print_json(j);
        } else {
            auto caps = caps_of(ctx, r);
            say("berth: '" + r.name + "' stopped" +
                (caps.stop_note.empty() ? std::string() : "; " + caps.stop_note) +
                " (`berth start " + r.name + "`)");
        }
    });

    auto *d = command(app, "destroy");
    static std::string destroy_name;
    static bool yes = false, force = false, purge = false;
    static std::string guard_repo;
    d->add_option("NAME", destroy_name)->required();
    d->add_flag("-y,--yes", yes, "do not ask for confirmation");
    d->add_flag("--force", force, "destroy even if it holds work no snapshot has");
    d->add_flag("--purge", purge,
                "also remove the persistent store it used on your own host (ssh, slurm), "
                "unless another machine there uses it or your home links into it");
    d->add_option("--repo", guard_repo,
                  "the repository its snapshots are in (default $XDG_DATA_HOME/berth/repo)");
    d->callback([&ctx] {
        auto db = open_state();
        Engine e(db, registry(ctx), progress_for(ctx));
        // --purge also finds a machine that ended on its own (a Slurm job past its limit):
        // its record is destroyed, its store may still be there.
        auto known = must(db.get(destroy_name));
        auto rec = purge && known && known->status == Status::destroyed
                       ? *known
                       : e.refresh(must(e.find(destroy_name)));
        // --purge asks first whether the store may go: a refusal changes nothing.
        std::string store;
        if (purge) store = must(e.purge_store(rec, true));
        if (rec.status == Status::destroyed && !purge) {
            say("berth: '" + destroy_name + "' is already destroyed (" + rec.message + ")");
            return;
        }
        if (!force && rec.status != Status::destroyed) guard_unsaved(ctx, rec, guard_repo);
        if (!yes) {
            if (!::isatty(0))
                throw Abort(Error{"destroy needs confirmation",
                                  "pass -y to destroy '" + destroy_name + "' without asking", 2});
            if (purge)
                std::cerr << "destroy '" << destroy_name << "' and its store "
                          << (store.empty() ? std::string("(none there now)") : store)
                          << "? Everything persisted in it is deleted. [y/N] " << std::flush;
            else
                std::cerr << "destroy '" << destroy_name
                          << "' and its /notebooks? /storage is kept. [y/N] " << std::flush;
            std::string answer;
            std::getline(std::cin, answer);
            if (answer != "y" && answer != "yes") throw Abort(Error{"not destroyed", "", 1});
        }
        if (rec.status != Status::destroyed) must(e.destroy(destroy_name));
        std::string purged;
        if (purge) purged = must(e.purge_store(rec, false));
        if (ctx.json) {
            nlohmann::json j = {
                {"schema", "berth.destroy/1"}, {"name", destroy_name}, {"status", "destroyed"}};
            if (purge) j["purged"] = purged;
            print_json(j);
        } else {
            say("berth: '" + destroy_name + "' destroyed" +
                (purge ? (purged.empty() ? "; it had no store to purge"
                                         : "; its store " + purged + " removed")
                 : caps_of(ctx, rec).destroy_note.empty() ? std::string()
                                                          : "; " + caps_of(ctx, rec).destroy_note));
        }
    });
}

void add_account(CLI::App &app, Context &ctx) {
    auto *a = command(app, "account");
    static std::string provider;
    static FlagValues flags;
    a->add_option("--provider", provider,
                  "a billed provider (default: the one your machines are on, else the first)");
    add_provider_flags(a, flags, true);
    a->callback([&ctx] {
        const auto &reg = registry(ctx);
        if (provider.empty()) {
            // The billed provider of the newest machine that is not destroyed.
            // Else the provider of the newest machine (a Slurm cluster's use in GPU-hours).
            auto db0 = open_state();
            std::string any;
            for (const auto &r : must(db0.list())) {
                auto row = reg.find(r.provider);
                if (r.status != Status::destroyed && row && (*row)->capabilities.billed)
                    provider = r.provider;
                if (r.status != Status::destroyed && row) any = r.provider;
            }
            if (provider.empty()) provider = any;
            for (const auto &row : reg.rows())
                if (row.capabilities.billed && provider.empty()) provider = row.name;
        }
        const auto *row = must(reg.find(provider));
        auto db = open_state();
        Engine e(db, reg, [](const std::string &) {});
        // Fresh states first: a machine that stopped itself stops its rent meter.
        for (auto &r : must(db.list()))
            if (r.status != Status::destroyed) (void)e.refresh(r);
        double now = epoch_now();
        auto ledger = summarize(must(db.meters()), now);
        // The newest machine of that provider gives back what it remembered (a login node).
        auto records = must(db.list()); // after the refresh above
        std::optional<InstanceRecord> newest;
        for (const auto &r : records)
            if (r.provider == provider && r.status != Status::destroyed) newest = r;
        auto p = newest ? must(e.provider_of(*newest, provider_options(ctx, *row, flags, true)))
                        : must(reg.make(provider, provider_options(ctx, *row, flags, true)));
        auto credit = must(p->credit());
        auto standing = must(p->standing());
        // The provider's view of the burn: every machine of the account, berth's or not.
        double burn = 0;
        auto machines = p->list();
        if (machines)
            for (const auto &m : *machines) {
                if (m.state == MachineState::running) burn += m.rent_per_hour;
                if (m.state != MachineState::gone) burn += m.storage_per_hour;
            }
        double hours_left = credit && burn > 0 ? *credit / burn : -1;
        // Providers that account in resource-hours (Slurm): berth's jobs of the last 30 days.
        auto opts = provider_options(ctx, *row, flags, true);
        double rate = -1;
        if (auto it = opts.find("gpu-hour-rate"); it != opts.end() && !it->second.empty()) {
            char *end = nullptr;
            rate = std::strtod(it->second.c_str(), &end);
            if (!end || *end || rate < 0 || rate > 1e6)
                throw Abort(Error{"bad provider." + provider + ".gpu-hour-rate '" +
                                      it->second.substr(0, 40) + "'",
                                  "dollars per GPU-hour, like 0.85", 2, ErrorKind::user});
        }
        auto usage = p->usage(30);
        std::string usage_error = usage ? "" : usage.error().what;
        std::optional<Provider::Usage> used = usage ? *usage : std::nullopt;
        double gpu_h = 0, cpu_h = 0;
        // Where the provider's accounting has no GPU counts (Slurm without slurmdbd keeps no
        // GPU TRES), berth's own record of what the job asked for.
        if (used)
            for (auto &l : used->lines) {
                if (l.gpus > 0) continue;
                for (const auto &r : records) {
                    if (r.provider != provider || r.provider_id.rfind(l.id + "@", 0) != 0) continue;
                    auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
                    if (!spec.is_object() || !spec.contains("options") ||
                        !spec["options"].is_object())
                        continue;
                    auto g = spec["options"].value("gpus-per-node", std::string());
                    if (!g.empty() && g.size() <= 4 &&
                        g.find_first_not_of("0123456789") == std::string::npos)
                        l.gpus = std::atoi(g.c_str()) * std::max(1, l.nodes);
                }
            }
        if (used)
            for (const auto &l : used->lines) {
                gpu_h += l.hours(now) * l.gpus;
                cpu_h += l.hours(now) * l.cpus;
            }
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
                 {"standing", standing
                                  ? nlohmann::json{{"good", standing->good}, {"why", standing->why}}
                                  : nlohmann::json()},
                 {"burn_per_hour", burn},
                 {"hours_left", hours_left >= 0 ? nlohmann::json(hours_left) : nlohmann::json()},
                 {"ledger_total", spent},
                 {"ledger", rows},
                 {"usage", [&]() -> nlohmann::json {
                      if (!usage_error.empty()) return {{"error", usage_error}};
                      if (!used) return nullptr;
                      nlohmann::json jobs = nlohmann::json::array();
                      for (const auto &l : used->lines)
                          jobs.push_back({{"instance", l.name},
                                          {"id", l.id},
                                          {"state", l.state},
                                          {"start", l.start},
                                          {"end", l.end > 0 ? nlohmann::json(l.end) : nullptr},
                                          {"nodes", l.nodes},
                                          {"cpus", l.cpus},
                                          {"gpus", l.gpus},
                                          {"hours", l.hours(now)},
                                          {"gpu_hours", l.hours(now) * l.gpus},
                                          {"cpu_hours", l.hours(now) * l.cpus}});
                      return {{"source", used->source},
                              {"days", 30},
                              {"gpu_hours", gpu_h},
                              {"cpu_hours", cpu_h},
                              {"gpu_hour_rate", rate >= 0 ? nlohmann::json(rate) : nullptr},
                              {"cost", rate >= 0 ? nlohmann::json(gpu_h * rate) : nullptr},
                              {"jobs", jobs}};
                  }()}});
            return;
        }
        if (!row->capabilities.billed) {
            say(provider + " is not billed by berth's ledger" +
                (used || !usage_error.empty() ? ": its use is in resource-hours below" : ""));
            if (!usage_error.empty()) {
                say(term::paint("usage       unavailable: " + usage_error, term::Color::yellow));
                return;
            }
            if (!used) return;
            say("");
            say("berth's jobs of the last 30 days (" + used->source + "):");
            std::printf("%-16s %-10s %-12s %5s %5s %5s %9s %9s %9s\n", "INSTANCE", "JOB", "STATE",
                        "NODES", "CPUS", "GPUS", "HOURS", "GPU-H", "CPU-H");
            for (const auto &l : used->lines)
                std::printf("%-16s %-10s %-12s %5d %5d %5d %9.3f %9.3f %9.3f\n", l.name.c_str(),
                            l.id.c_str(), l.state.c_str(), l.nodes, l.cpus, l.gpus, l.hours(now),
                            l.hours(now) * l.gpus, l.hours(now) * l.cpus);
            char total[200];
            std::snprintf(total, sizeof total, "total       %.3f GPU-hours, %.3f CPU-hours", gpu_h,
                          cpu_h);
            say(total);
            if (rate >= 0) {
                std::snprintf(total, sizeof total, "cost        $%.2f at $%.2f per GPU-hour",
                              gpu_h * rate, rate);
                say(total);
            }
            return;
        }
        char line[160];
        if (credit) {
            std::snprintf(line, sizeof line, "credit      $%.2f", *credit);
            say(line);
        }
        if (standing)
            say(standing->good ? term::paint("standing    good", term::Color::green)
                               : term::paint("standing    NOT in good standing" +
                                                 (standing->why.empty() ? std::string()
                                                                        : ": " + standing->why) +
                                                 " (new machines are refused)",
                                             term::Color::red));
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
