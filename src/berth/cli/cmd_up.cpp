// berth up | start | stop | destroy: the life of a machine.
#include "cli/commands.hpp"
#include "engine/lifecycle.hpp"
#include "engine/workspace.hpp"
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

void add_up(CLI::App &app, Context &ctx) {
    auto *up = app.add_subcommand("up", "create a machine and wait until SSH and Jupyter answer");
    static std::string name = "workspace", provider = "local";
    static double max_hours = 0, timeout = 180;
    up->add_option("NAME", name, "instance name")->capture_default_str();
    up->add_option("--provider", provider, "where: local")->capture_default_str();
    up->add_option("--max-hours", max_hours, "the machine stops itself after H hours (0: never)")
        ->check(CLI::NonNegativeNumber);
    up->add_option("--timeout", timeout, "seconds to wait for it to be ready")
        ->capture_default_str();
    up->callback([&ctx] {
        auto t0 = std::chrono::steady_clock::now();
        auto db = open_state();
        Engine e(db, progress_for(ctx));
        UpRequest req{name, provider, max_hours, std::chrono::seconds(static_cast<long>(timeout))};
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
            say("berth: '" + r.name + "' stopped; /storage and /notebooks are kept (`berth start " +
                r.name + "`)");
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
            say("berth: '" + destroy_name + "' destroyed; /storage kept");
    });
}

} // namespace berth::cli
