// berth ls | status | ssh | ssh-config | jupyter
#include "cli/commands.hpp"
#include "cli/providers.hpp"
#include "core/json_read.hpp"
#include "core/paths.hpp"
#include "engine/idle.hpp"
#include "engine/lifecycle.hpp"
#include "util/fs.hpp"
#include "util/net.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"
#include "util/term.hpp"

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <unistd.h>

namespace berth::cli {

StateDb open_state();
nlohmann::json instance_json(const InstanceRecord &r);
void say_idle_status(const nlohmann::json &st);

namespace {

std::string age(std::int64_t since) {
    long s = static_cast<long>(std::time(nullptr) - since);
    char buf[32];
    if (s < 120)
        std::snprintf(buf, sizeof buf, "%lds", s);
    else if (s < 7200)
        std::snprintf(buf, sizeof buf, "%ldm", s / 60);
    else
        std::snprintf(buf, sizeof buf, "%.1fh", s / 3600.0);
    return buf;
}

term::Color color_of(Status s) {
    if (s == Status::running) return term::Color::green;
    if (s == Status::failed) return term::Color::red;
    return term::Color::yellow;
}

void cmd_ls(Context &ctx) {
    auto db = open_state();
    Engine e(db, registry(ctx), [](const std::string &) {});
    auto all = must(db.list());
    std::vector<InstanceRecord> live;
    for (auto &r : all)
        if (r.status != Status::destroyed) live.push_back(e.refresh(r));
    // Each running machine's watcher, asked at once (it decides; this only reads).
    auto idle = idle_status_all(live);
    if (ctx.json) {
        nlohmann::json arr = nlohmann::json::array();
        for (std::size_t i = 0; i < live.size(); ++i) {
            auto j = instance_json(live[i]);
            j["stops_in"] = idle[i] ? stops_in(*idle[i]) : "";
            j["idle"] = idle[i] ? *idle[i] : nlohmann::json();
            arr.push_back(j);
        }
        print_json({{"schema", "berth.ls/1"}, {"instances", arr}});
        return;
    }
    if (live.empty()) {
        say("no instances (create one with `berth up`)");
        return;
    }
    std::printf("%-16s %-9s %-10s %-22s %-6s %-12s %s\n", "NAME", "PROVIDER", "STATUS", "SSH",
                "AGE", "STOPS IN", "MESSAGE");
    for (std::size_t i = 0; i < live.size(); ++i) {
        const auto &r = live[i];
        std::string st = status_name(r.status);
        st.resize(std::max<std::size_t>(st.size(), 10), ' ');
        std::string ssh = r.ssh_port ? r.ssh_host + ":" + std::to_string(r.ssh_port) : "-";
        std::string stops = r.status != Status::running ? "-" : idle[i] ? stops_in(*idle[i]) : "?";
        std::printf("%-16s %-9s %s %-22s %-6s %-12s %s\n", r.name.c_str(), r.provider.c_str(),
                    term::paint(st, color_of(r.status)).c_str(), ssh.c_str(),
                    age(r.created_at).c_str(), stops.c_str(), r.message.c_str());
    }
}

void cmd_status(Context &ctx, const std::string &name) {
    auto db = open_state();
    Engine e(db, registry(ctx), [](const std::string &) {});
    auto r = e.refresh(must(e.find(name)));
    auto intents = must(db.intents(name));
    std::optional<nlohmann::json> idle;
    std::string idle_error;
    if (r.status == Status::running) {
        auto st = idle_status(r);
        if (st)
            idle = *st;
        else
            idle_error = st.error().what;
    }
    // A machine of several nodes (Slurm --nodes N): each node's address, asked of the provider.
    nlohmann::json nodes = nlohmann::json::array();
    if (r.status == Status::running) {
        auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
        int n = 1;
        if (spec.is_object() && spec.contains("options") && spec["options"].is_object())
            n = std::atoi(jsonr::text(spec["options"], "nodes", "1", 4).c_str());
        if (n > 1)
            if (auto p = e.provider_of(r))
                for (int k = 0; k < n && k < 256; ++k) {
                    auto ep = (*p)->node(r.provider_id, k);
                    nodes.push_back(ep ? nlohmann::json{{"node", k},
                                                        {"host", ep->host},
                                                        {"port", ep->port},
                                                        {"up", true}}
                                       : nlohmann::json{{"node", k},
                                                        {"up", false},
                                                        {"error", ep.error().what}});
                }
    }
    if (ctx.json) {
        auto j = instance_json(r);
        j["schema"] = "berth.status/1";
        j["nodes"] = nodes;
        j["idle"] = idle ? *idle : nlohmann::json();
        if (!idle_error.empty()) j["idle_error"] = idle_error;
        nlohmann::json arr = nlohmann::json::array();
        for (const auto &i : intents)
            arr.push_back({{"action", i.action},
                           {"state", i.state},
                           {"detail", i.detail},
                           {"created_at", i.created_at},
                           {"finished_at", i.finished_at}});
        j["intents"] = arr;
        print_json(j);
        return;
    }
    say(r.name + ": " + term::paint(status_name(r.status), color_of(r.status)) + " on " +
        r.provider + (r.message.empty() ? "" : " (" + r.message + ")"));
    if (r.ssh_port)
        say("  ssh       " + r.ssh_user + "@" + r.ssh_host + ":" + std::to_string(r.ssh_port) +
            " (berth-" + r.name + ")");
    if (r.tunnel_port && r.status == Status::running) say("  jupyter   " + Engine::jupyter_url(r));
    for (const auto &nd : nodes) {
        int k = nd.value("node", 0);
        if (nd.value("up", false))
            say("  node " + std::to_string(k) + "    " + nd.value("host", std::string()) + ":" +
                std::to_string(nd.value("port", 0)) + "   (berth ssh " + r.name + " --node " +
                std::to_string(k) + ")");
        else
            say("  node " + std::to_string(k) + "    " +
                term::paint("not up: " + nd.value("error", std::string()), term::Color::red));
    }
    if (idle) say_idle_status(*idle);
    if (!idle_error.empty()) say("  idle      the machine did not say: " + idle_error);
    say("  intents:");
    for (const auto &i : intents) {
        std::time_t t = static_cast<std::time_t>(i.created_at);
        char ts[32];
        std::strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", std::localtime(&t));
        say(std::string("    ") + ts + "  " + i.action + "  " + i.state +
            (i.detail.empty() ? "" : "  " + i.detail));
    }
}

// Waits for sshd with backoff while the machine boots, then becomes ssh.
void cmd_ssh(Context &ctx, const std::string &name, const std::vector<std::string> &command,
             int node) {
    auto db = open_state();
    Engine e(db, registry(ctx), [](const std::string &) {});
    auto r = e.refresh(must(e.find(name)));
    if (r.status != Status::running && r.status != Status::loading && r.status != Status::starting)
        throw Abort(Error{"instance '" + name + "' is " + status_name(r.status),
                          "start it with `berth start " + name + "`"});
    auto t = Engine::target_of(r);
    if (node > 0) {
        // Another node of the allocation: its own address and host key (pinned for this job).
        auto p = must(e.provider_of(r));
        auto ep = must(p->node(r.provider_id, node));
        t.alias = "berth-" + name + "-n" + std::to_string(node);
        t.host = ep.host;
        t.port = ep.port;
        t.user = ep.user;
        must(ssh::pin_host_key(t.alias, ep.host_key));
    } else if (node < 0) {
        throw Abort(Error{"bad --node " + std::to_string(node), "0 is the first node", 2});
    }
    // sshd itself, not just the port: a provider's proxy accepts and closes while the
    // machine's sshd is still starting (Vast reports running before it answers). (A host of
    // the user's own, or a node behind a login node, is reached by ssh itself.)
    int err = 0;
    if (!t.user_ssh && t.jump.empty() &&
        !net::wait_ssh(t.host, t.port, std::chrono::seconds(30), &err))
        throw Abort(Error{"cannot reach '" + name + "' at " + t.host + ":" +
                              std::to_string(t.port) + ": " + std::strerror(err),
                          "see `berth status " + name + "`"});
    std::vector<std::string> argv = {"ssh"};
    if (command.empty()) argv.push_back("-t");
    auto opts = ssh::options(t);
    argv.insert(argv.end(), opts.begin(), opts.end());
    argv.push_back(t.host);
    if (!command.empty()) {
        argv.push_back("--");
        argv.insert(argv.end(), command.begin(), command.end());
    }
    (void)ctx;
    std::vector<char *> a;
    for (auto &s : argv)
        a.push_back(s.data());
    a.push_back(nullptr);
    std::fflush(stdout);
    ::execvp("ssh", a.data());
    throw Abort(
        Error{std::string("cannot run ssh: ") + std::strerror(errno), "install openssh-client"});
}

void cmd_ssh_config(Context &ctx, bool print_only) {
    auto file = ssh::config_file();
    if (print_only) {
        auto text = fs::read_file(file);
        say(text ? *text : "");
        return;
    }
    auto user_config = ctx.home() / ".ssh" / "config";
    bool changed = must(ssh::install_include(user_config));
    if (ctx.json) {
        print_json({{"schema", "berth.ssh-config/1"},
                    {"file", file.string()},
                    {"included_from", user_config.string()},
                    {"changed", changed}});
        return;
    }
    say((changed ? "added `Include " : "already there: `Include ") + file.string() + "` to " +
        user_config.string());
    say("now `ssh berth-NAME` and VS Code Remote-SSH reach your instances");
}

void cmd_jupyter(Context &ctx, const std::string &name, bool open) {
    auto db = open_state();
    Engine e(db, registry(ctx), [](const std::string &) {});
    auto r = e.refresh(must(e.find(name)));
    if (r.status != Status::running)
        throw Abort(Error{"instance '" + name + "' is " + status_name(r.status),
                          "start it with `berth start " + name + "`"});
    r = must(e.ensure_tunnel(r));
    auto url = Engine::jupyter_url(r);
    if (ctx.json)
        print_json({{"schema", "berth.jupyter/1"},
                    {"name", name},
                    {"url", url},
                    {"local_port", r.tunnel_port}});
    else
        say(url);
    if (open) {
        const char *browser = std::getenv("BROWSER");
        std::string opener = browser && *browser ? browser : "xdg-open";
        auto res = proc::run({opener, url}, {std::nullopt, {}, std::chrono::seconds(10)});
        if (!res || res->status != 0)
            warn("could not open a browser (" + opener + "); open the URL above");
    }
}

} // namespace

void add_ls(CLI::App &app, Context &ctx) {
    auto *ls = command(app, "ls");
    static bool reconcile = false;
    static std::string rprovider;
    static FlagValues rflags;
    ls->add_flag("--reconcile", reconcile,
                 "first rebuild berth's records from the providers' labelled machines");
    ls->add_option("--provider", rprovider,
                   "the provider --reconcile asks (default: every one that lists machines and "
                   "bills)");
    add_provider_flags(ls, rflags, true);
    ls->callback([&ctx] {
        if (reconcile) {
            auto db = open_state();
            const auto &reg = registry(ctx);
            Engine e(db, reg, [](const std::string &) {});
            std::vector<const ProviderRow *> which;
            if (!rprovider.empty())
                which.push_back(must(reg.find(rprovider)));
            else
                for (const auto &row : reg.rows())
                    if (row.capabilities.lists_machines && row.capabilities.billed)
                        which.push_back(&row);
            for (const auto *row : which) {
                auto opts = provider_options(ctx, *row, rflags, true);
                // Every billed provider by default: one you have no credentials for is
                // skipped with a word, never a reason to reconcile none.
                if (rprovider.empty())
                    if (auto p = reg.make(row->name, opts); !p) {
                        if (!ctx.json) warn("skipped " + row->name + ": " + p.error().what);
                        continue;
                    }
                auto added = must(e.reconcile(row->name, opts));
                if (!ctx.json)
                    for (const auto &n : added)
                        warn("recovered '" + n + "' from " + row->name);
            }
        }
        cmd_ls(ctx);
    });

    auto *st = command(app, "status");
    static std::string status_name_arg;
    st->add_option("NAME", status_name_arg)->required();
    st->callback([&ctx] { cmd_status(ctx, status_name_arg); });

    auto *s = command(app, "ssh");
    static std::string ssh_name;
    static std::vector<std::string> ssh_cmd;
    s->add_option("NAME", ssh_name)->required();
    s->add_option("CMD", ssh_cmd, "command to run (after --)");
    static int ssh_node = 0;
    s->add_option("--node", ssh_node, "node K of a machine of several nodes (Slurm --nodes)");
    s->callback([&ctx] { cmd_ssh(ctx, ssh_name, ssh_cmd, ssh_node); });

    auto *sc = command(app, "ssh-config");
    static bool print_only = false;
    sc->add_flag("--print", print_only, "print berth's ssh_config instead");
    sc->callback([&ctx] { cmd_ssh_config(ctx, print_only); });

    auto *j = command(app, "jupyter");
    static std::string jname;
    static bool open = false;
    j->add_option("NAME", jname)->required();
    j->add_flag("--open", open, "open it in a browser ($BROWSER or xdg-open)");
    j->callback([&ctx] { cmd_jupyter(ctx, jname, open); });
}

} // namespace berth::cli
