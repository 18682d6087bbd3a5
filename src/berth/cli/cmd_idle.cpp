// berth idle NAME DURATION | berth hold [NAME] [--for D] [--release]
// The machine decides (agent/watch.hpp); these only change its setting or ask its view.
#include "agent/watch.hpp"
#include "cli/commands.hpp"
#include "cli/providers.hpp"
#include "engine/idle.hpp"
#include "util/strings.hpp"
#include "util/term.hpp"

#include <cmath>
#include <ctime>

namespace berth::cli {

StateDb open_state();

namespace {

std::string clock_time(double epoch) {
    std::time_t t = static_cast<std::time_t>(epoch);
    char buf[32];
    std::strftime(buf, sizeof buf, "%H:%M:%S", std::localtime(&t));
    return buf;
}

InstanceRecord running(Context &ctx, StateDb &db, const std::string &name) {
    Engine e(db, registry(ctx), [](const std::string &) {});
    auto r = e.refresh(must(e.find(name)));
    if (r.status != Status::running)
        throw Abort(Error{"instance '" + name + "' is " + status_name(r.status) +
                              ": only a running machine has an idle clock",
                          "start it with `berth start " + name + "`", 1});
    return r;
}

} // namespace

void say_idle_status(const nlohmann::json &st) {
    double now = st.value("now", st.value("updated", 0.0));
    long idle_s = st.value("idle_seconds", 0L);
    std::string line = "  idle      " + (idle_s > 0 ? idle::format_duration(idle_s) : "off");
    double idle_for = st.value("idle_for", 0.0);
    if (idle_s > 0)
        line += ", quiet for " +
                (idle_for < 1 ? std::string("0s") : idle::format_duration(std::lround(idle_for))) +
                (st.value("busy_by", std::string()).empty()
                     ? ""
                     : " (last activity: " + st.value("busy_by", std::string()) + ")");
    say(line);
    std::string kind = st.value("stop_kind", std::string());
    double at = st.value("stops_at", 0.0);
    if (st.contains("hold") && st["hold"].is_object() && st["hold"].value("active", false)) {
        double until = st["hold"].value("until", 0.0);
        say("  hold      " +
            (until > 0 ? "until " + clock_time(until) : std::string("until released")) +
            " (`berth hold NAME --release`)");
    }
    if (at > 0)
        say("  stops     at " + clock_time(at) + " (in " +
            idle::format_duration(std::max(1L, std::lround(at - now))) + ", " +
            (kind == "idle" ? "idle" : "max-hours") + ")");
    double dl = st.value("deadline", 0.0);
    if (dl > 0 && kind == "idle") say("  deadline  " + clock_time(dl) + " (max-hours)");
    if (!st.value("warning", std::string()).empty())
        say("  " +
            term::paint("warning   " + st.value("warning", std::string()), term::Color::yellow));
    if (!st.value("stopping", std::string()).empty())
        say("  " +
            term::paint("stopping  " + st.value("stopping", std::string()), term::Color::yellow));
    if (!st.value("error", std::string()).empty())
        say("  " + term::paint("problem   " + st.value("error", std::string()), term::Color::red));
    if (now - st.value("updated", now) > 60)
        say("  " +
            term::paint("the watcher has been silent for " +
                            idle::format_duration(std::lround(now - st.value("updated", now))),
                        term::Color::red));
    say("  signals:");
    if (st.contains("signals") && st["signals"].is_array())
        for (const auto &s : st["signals"]) {
            if (!s.is_object()) continue;
            std::string level = s.value("level", std::string("?"));
            std::string shown = level == "unreadable" ? "busy (unreadable)" : level;
            term::Color c = level == "busy"         ? term::Color::green
                            : level == "unreadable" ? term::Color::red
                                                    : term::Color::dim;
            std::string name = s.value("name", std::string("?"));
            name.resize(std::max<std::size_t>(name.size(), 8), ' ');
            std::string padded = shown;
            padded.resize(std::max<std::size_t>(padded.size(), 17), ' ');
            say("    " + name + " " + term::paint(padded, c) + " " +
                s.value("value", std::string()));
        }
}

void add_idle(CLI::App &app, Context &ctx) {
    auto *c = command(app, "idle");
    static std::string name, duration;
    c->add_option("NAME", name, "instance name")->required();
    c->add_option("DURATION", duration, "45m, 2h, 90s, 1h30m, or off")->required();
    c->callback([&ctx] {
        long seconds = must(idle::parse_duration(duration));
        auto db = open_state();
        auto r = running(ctx, db, name);
        must(set_idle(db, r, seconds));
        if (ctx.json) {
            print_json({{"schema", "berth.idle-set/1"}, {"name", name}, {"idle_seconds", seconds}});
            return;
        }
        if (seconds > 0)
            say("'" + name + "' stops itself after " + idle::format_duration(seconds) +
                " without activity (the machine decides; no client needs to run)");
        else
            say("idle stop is off for '" + name + "'" + " (--max-hours, if set, still applies)");
    });

    auto *h = command(app, "hold");
    static std::string hold_name, hold_for;
    static bool release = false;
    h->add_option("NAME", hold_name,
                  "instance name (leave it out when you run this on the machine itself)");
    h->add_option("--for", hold_for, "how long: 3h, 45m (default: until --release)");
    h->add_flag("--release", release, "end the hold: the idle clock counts again");
    h->callback([&ctx] {
        long seconds = hold_for.empty() ? 0 : must(idle::parse_duration(hold_for));
        if (!hold_for.empty() && seconds == 0)
            throw Abort(Error{"--for off makes no hold", "use --release to end one", 2});
        if (hold_name.empty()) {
            // On the machine: the watcher's own files.
            auto f = idle::machine_files();
            if (!std::filesystem::exists(f.config()))
                throw Abort(Error{"no idle watcher on this machine",
                                  "on your laptop, name the machine: `berth hold NAME`", 2});
            if (release) {
                must(idle::release_hold(f));
                if (!ctx.json) say("hold released: the idle clock counts again");
            } else {
                idle::Hold hold{
                    true, seconds > 0 ? static_cast<double>(std::time(nullptr) + seconds) : 0.0};
                must(idle::write_hold(f, hold));
                if (!ctx.json)
                    say(seconds > 0 ? "held until " + clock_time(hold.until) +
                                          " (--max-hours still applies)"
                                    : "held until `berth hold --release` (--max-hours still "
                                      "applies)");
            }
            if (ctx.json)
                print_json(
                    {{"schema", "berth.hold/1"}, {"released", release}, {"seconds", seconds}});
            return;
        }
        auto db = open_state();
        auto r = running(ctx, db, hold_name);
        must(hold_machine(r, seconds, release));
        if (ctx.json) {
            print_json({{"schema", "berth.hold/1"},
                        {"name", hold_name},
                        {"released", release},
                        {"seconds", seconds}});
            return;
        }
        if (release)
            say("'" + hold_name + "': hold released; the idle clock counts again");
        else
            say("'" + hold_name + "' is held " +
                (seconds > 0 ? "for " + idle::format_duration(seconds)
                             : std::string("until `berth hold " + hold_name + " --release`")) +
                " (--max-hours still applies)");
    });
}

} // namespace berth::cli
