// berth persist init|add|remove|restore|status
#include "agent/persist.hpp"
#include "cli/commands.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/term.hpp"

#include <csignal>
#include <cstdio>
#include <memory>
#include <unistd.h>

namespace berth::cli {

namespace {

// Draws a progress bar for each copy that moves data.
class ProgressObserver : public MigrationObserver {
public:
    void copy_started(const std::string &path, std::uint64_t bytes) override {
        m_bar = std::make_unique<term::Progress>("~/" + path, bytes);
    }
    void copied(std::uint64_t n) override {
        if (m_bar) m_bar->add(n);
    }
    void copy_finished() override { m_bar.reset(); }

private:
    std::unique_ptr<term::Progress> m_bar;
};

Store open_store(Context &ctx) {
    return must(find_store(ctx.store_setting()));
}

nlohmann::json report_json(const LinkReport &r) {
    return {{"path", r.path},
            {"action", action_name(r.action)},
            {"bytes_moved", r.bytes_moved},
            {"conflicts", r.conflicts},
            {"conflicts_dir", r.conflicts_dir},
            {"note", r.note}};
}

term::Color action_color(LinkAction a) {
    switch (a) {
    case LinkAction::migrated:
    case LinkAction::merged:
    case LinkAction::recovered:
    case LinkAction::repaired:
        return term::Color::green;
    case LinkAction::foreign_link:
        return term::Color::yellow;
    default:
        return term::Color::none;
    }
}

void print_run(Context &ctx, const Store &store, const PersistRun &run, const char *schema) {
    if (ctx.json) {
        nlohmann::json items = nlohmann::json::array();
        for (const auto &i : run.items) {
            auto j = report_json(i.report);
            j["error"] = i.error;
            items.push_back(j);
        }
        print_json({{"schema", schema},
                    {"store", store.root.string()},
                    {"items", items},
                    {"ssh_modes_fixed", run.ssh_fixed},
                    {"seconds", run.seconds},
                    {"ok", run.ok()}});
        return;
    }
    for (const auto &i : run.items) {
        std::string name = "~/" + i.report.path;
        if (!i.error.empty()) {
            std::printf("  %-22s %s\n", name.c_str(),
                        term::paint("failed: " + i.error, term::Color::red).c_str());
            continue;
        }
        std::string what = term::paint(action_name(i.report.action), action_color(i.report.action));
        std::string extra;
        if (i.report.bytes_moved) extra += " " + str::human_bytes(i.report.bytes_moved);
        if (i.report.conflicts)
            extra += ", " + std::to_string(i.report.conflicts) + " conflicts kept in " +
                     i.report.conflicts_dir;
        if (!i.report.note.empty()) extra += " (" + i.report.note + ")";
        std::printf("  %-22s %s%s\n", name.c_str(), what.c_str(), extra.c_str());
    }
}

// One line for the boot log: counts per action.
std::string summary_line(const Store &store, const PersistRun &run) {
    std::map<std::string, int> counts;
    int failed = 0;
    for (const auto &i : run.items) {
        if (!i.error.empty())
            ++failed;
        else
            ++counts[action_name(i.report.action)];
    }
    std::vector<std::string> parts;
    for (const auto &[k, v] : counts)
        parts.push_back(std::to_string(v) + " " + k);
    if (failed) parts.push_back(std::to_string(failed) + " FAILED");
    return "berth: restored " + std::to_string(run.items.size()) + " paths from " +
           store.root.string() + " in " + str::human_duration(run.seconds) + " (" +
           str::join(parts, ", ") + "; " + std::to_string(run.ssh_fixed) +
           " SSH modes fixed); log: " + store.log_file().string();
}

void cmd_init(Context &ctx) {
    auto store = open_store(ctx);
    ProgressObserver obs;
    auto run = must(persist_init(store, ctx.home(), obs));
    if (!ctx.json)
        say("store " + store.root.string() + ": persisting " + std::to_string(run.items.size()) +
            " paths");
    print_run(ctx, store, run, "berth.persist.init/1");
    if (!run.ok())
        ctx.exit_code = 1;
    else if (!ctx.json)
        say("next: `berth hook install --paperspace` so every boot restores them");
}

void cmd_add(Context &ctx, const std::string &path, bool as_file) {
    auto store = open_store(ctx);
    ProgressObserver obs;
    auto r =
        must(persist_add(store, ctx.home(), path, as_file ? ItemKind::file : ItemKind::dir, obs));
    if (ctx.json) {
        auto j = report_json(r);
        j["schema"] = "berth.persist.add/1";
        print_json(j);
        return;
    }
    say("~/" + r.path + ": " + action_name(r.action) +
        (r.bytes_moved ? " (" + str::human_bytes(r.bytes_moved) + " moved)" : std::string()) +
        " -> " + (store.cfg() / r.path).string());
    if (r.conflicts)
        say("  " + std::to_string(r.conflicts) + " conflicting files kept in " + r.conflicts_dir);
}

void cmd_remove(Context &ctx, const std::string &path, bool purge) {
    auto store = open_store(ctx);
    ProgressObserver obs;
    auto r = must(persist_remove(store, ctx.home(), path, purge, obs));
    if (ctx.json) {
        print_json({{"schema", "berth.persist.remove/1"},
                    {"path", r.path},
                    {"bytes", r.bytes},
                    {"store_copy", r.store_copy}});
        return;
    }
    say("~/" + r.path + " is a real " + "path again (" + str::human_bytes(r.bytes) +
        " copied back); no longer persisted");
    if (!r.store_copy.empty())
        say("  the store's copy is kept at " + r.store_copy +
            " (delete it when you no longer need it)");
}

extern "C" void restore_timeout(int) {
    const char msg[] =
        "berth: persist restore gave up (restore.timeout_s); the machine boots without it\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(1);
}

void cmd_restore(Context &ctx, double timeout_s) {
    auto store = open_store(ctx);
    if (timeout_s <= 0) timeout_s = ctx.config.number("restore.timeout_s");
    if (timeout_s > 0) {
        std::signal(SIGALRM, restore_timeout);
        ::alarm(static_cast<unsigned>(timeout_s + 0.999));
    }
    ProgressObserver obs;
    auto run = must(persist_restore(store, ctx.home(), obs, std::chrono::seconds(10)));
    ::alarm(0);
    if (ctx.json)
        print_run(ctx, store, run, "berth.persist.restore/1");
    else
        say(summary_line(store, run));
    for (const auto &i : run.items)
        if (!i.error.empty() && !ctx.json) warn("~/" + i.report.path + ": " + i.error);
    store.log(summary_line(store, run));
    if (!run.ok()) ctx.exit_code = 1;
}

void cmd_status(Context &ctx) {
    auto store = open_store(ctx);
    auto st = must(persist_status(store, ctx.home()));
    if (ctx.json) {
        nlohmann::json items = nlohmann::json::array();
        for (const auto &i : st.items)
            items.push_back({{"path", i.item.path},
                             {"kind", kind_name(i.item.kind)},
                             {"state", state_name(i.state)},
                             {"store_bytes", i.store_bytes},
                             {"home_bytes", i.home_bytes},
                             {"detail", i.detail}});
        print_json({{"schema", "berth.persist.status/1"},
                    {"store", store.root.string()},
                    {"store_bytes", st.store_total},
                    {"pending_journals", st.pending_journals},
                    {"items", items}});
        return;
    }
    if (st.items.empty()) {
        say("nothing persisted in " + store.root.string() + " (run `berth persist init`)");
        return;
    }
    std::printf("%-24s %-6s %-13s %10s  %s\n", "PATH", "KIND", "STATE", "IN STORE", "DETAIL");
    bool problems = false;
    for (const auto &i : st.items) {
        auto color = i.state == ItemState::linked ? term::Color::green : term::Color::yellow;
        problems |= i.state != ItemState::linked;
        std::string state = state_name(i.state);
        std::string padded = state + std::string(state.size() < 13 ? 13 - state.size() : 0, ' ');
        std::printf("%-24s %-6s %s %10s  %s\n", ("~/" + i.item.path).c_str(),
                    kind_name(i.item.kind), term::paint(padded, color).c_str(),
                    str::human_bytes(i.store_bytes).c_str(), i.detail.c_str());
    }
    std::printf("store %s uses %s in all\n", store.root.c_str(),
                str::human_bytes(st.store_total).c_str());
    if (st.pending_journals)
        say(std::to_string(st.pending_journals) +
            " interrupted migration(s): run `berth persist restore`");
    if (problems) ctx.exit_code = 3;
}

} // namespace

void add_persist(CLI::App &app, Context &ctx) {
    auto *p = command(app, "persist");
    p->require_subcommand(1);

    subcommand(*p, "persist", "init")->callback([&ctx] { cmd_init(ctx); });

    auto *add = subcommand(*p, "persist", "add");
    static std::string add_path;
    static bool add_file = false;
    add->add_option("PATH", add_path, "a path under $HOME, e.g. ~/.cache/torch")->required();
    add->add_flag("--file", add_file, "create it as an empty file when it exists nowhere yet");
    add->callback([&ctx] { cmd_add(ctx, add_path, add_file); });

    auto *rm = subcommand(*p, "persist", "remove");
    static std::string rm_path;
    static bool purge = false;
    rm->add_option("PATH", rm_path, "a persisted path")->required();
    rm->add_flag("--purge", purge, "delete the store's copy once the copy in $HOME is verified");
    rm->callback([&ctx] { cmd_remove(ctx, rm_path, purge); });

    auto *rs = subcommand(*p, "persist", "restore");
    static double timeout = 0;
    rs->add_option("--timeout", timeout, "give up after SECONDS (default: restore.timeout_s)");
    rs->callback([&ctx] { cmd_restore(ctx, timeout); });

    subcommand(*p, "persist", "status")->callback([&ctx] { cmd_status(ctx); });
}

} // namespace berth::cli
