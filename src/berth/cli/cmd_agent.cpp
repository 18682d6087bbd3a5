// berth agent boot: the process that is the machine (see agent/machine.hpp). Not for users.
#include "agent/bootstrap.hpp"
#include "agent/machine.hpp"
#include "agent/slurm_node.hpp"
#include "agent/watch.hpp"
#include "cli/commands.hpp"
#include "engine/workspace.hpp"
#include "provider/registry.hpp"
#include "store/stream.hpp"
#include "util/fs.hpp"

#include <cerrno>
#include <csignal>
#include <ctime>

#include <cstdio>
#include <cstdlib>

namespace berth::cli {

void add_agent(CLI::App &app, Context &) {
    auto *a = command(app, "agent");
    a->require_subcommand(1);
    auto *boot = a->add_subcommand("boot", "run an instance directory as a machine");
    static std::string dir, storage;
    boot->add_option("--instance", dir)->required();
    boot->add_option("--storage", storage)->required();
    boot->callback([] { std::exit(run_machine_agent(InstanceDir{dir}, storage)); });
    auto *bs = a->add_subcommand(
        "bootstrap", "prepare a rented machine: persistence, Jupyter, the idle watcher");
    static BootstrapOptions bo;
    bs->add_option("--workdir", bo.workdir, "the machine's kept work directory");
    bs->add_option("--store", bo.store, "the persistence store (default <workdir>/.berth/storage)");
    bs->add_flag("!--no-link-home", bo.link_home,
                 "leave the home as it is (it is kept): no links into the store");
    bs->add_option("--max-hours", bo.max_hours, "stop the machine after H hours (0: never)");
    bs->add_option("--api-url", bo.api_url, "the provider API the watcher calls");
    bs->add_option("--provider", bo.provider, "whose self-stop the watcher runs");
    bs->add_option("--label", bo.label, "the machine's label at the provider");
    bs->add_option("--idle-seconds", bo.idle_seconds, "stop after this long idle (0: off)");
    bs->add_option("--cpu-percent", bo.thresholds.cpu_percent, "CPU busy threshold");
    bs->add_option("--network-kbps", bo.thresholds.network_kbps, "network busy threshold");
    bs->add_option("--gpu-percent", bo.thresholds.gpu_percent, "GPU busy threshold");
    bs->callback([] {
        auto r = bootstrap_machine(bo);
        if (!r) {
            std::fprintf(stderr, "berth: error: %s\n", r.error().line().c_str());
            std::exit(r.error().code ? r.error().code : 1);
        }
        std::printf("%s\n", r->dump().c_str());
        std::exit(0);
    });
    auto *sn = a->add_subcommand("slurm-node", "one node of a Slurm job: its own sshd for berth");
    static std::string slurm_dir;
    sn->add_option("--dir", slurm_dir, "the machine's directory on the cluster")->required();
    sn->callback([] { std::exit(run_slurm_node(slurm_dir)); });
    auto *wd = a->add_subcommand("watch", "the machine's idle watcher (see agent/watch.hpp)");
    static std::string how = "provider", api_url, provider, label;
    wd->add_option("--stop", how, "pid1 (the local machine's PID 1) or provider (its API)");
    wd->add_option("--api-url", api_url);
    wd->add_option("--provider", provider);
    wd->add_option("--label", label);
    wd->callback([] {
        idle::StopFn stop;
        if (how == "pid1") {
            stop = [](const std::string &reason) -> Result<> {
                BERTH_TRY(fs::write_file_atomic("/run/berth/stop-reason", reason + "\n", 0600));
                if (::kill(1, SIGTERM) != 0) return fail_errno("signal PID 1", errno);
                return {};
            };
        } else {
            auto row = builtin_registry().find(provider);
            if (row && (*row)->self_stop)
                stop = [f = (*row)->self_stop](const std::string &reason) {
                    return f(api_url, label, reason);
                };
            else
                stop = [](const std::string &) -> Result<> {
                    return fail("this provider has no way to stop a machine from inside");
                };
        }
        std::exit(idle::run_watch(idle::machine_files(), stop));
    });
    // What `berth idle`, `berth hold` and `berth status` ask the machine.
    auto *id = a->add_subcommand("idle", "the idle watcher's view (status) or setting (set)");
    id->require_subcommand(1);
    id->add_subcommand("status", "the watcher's view now, as JSON")->callback([] {
        auto f = idle::machine_files();
        auto text = fs::read_file(f.status());
        if (!text) {
            std::fprintf(stderr, "berth: error: no idle watcher has run on this machine\n");
            std::exit(1);
        }
        auto j = nlohmann::json::parse(*text, nullptr, false);
        if (!j.is_object()) {
            std::fprintf(stderr, "berth: error: %s is damaged\n", f.status().c_str());
            std::exit(1);
        }
        j["now"] = static_cast<double>(std::time(nullptr));
        // A hold or setting changed since the watcher's last look shows at once (it applies it at
        // its next tick, within seconds).
        if (auto s = idle::read_setting(f);
            s && s->policy.idle_seconds != j.value("idle_seconds", 0L)) {
            long idle_s = s->policy.idle_seconds;
            double last = j.value("last_busy", 0.0), dl = s->policy.deadline;
            double at = idle_s > 0 ? last + static_cast<double>(idle_s) : 0;
            bool idle_kind = at > 0 && (dl <= 0 || at < dl);
            j["idle_seconds"] = idle_s;
            j["stops_at"] = idle_kind ? at : dl;
            j["stop_kind"] = idle_kind ? "idle" : dl > 0 ? "max-hours" : "";
            j["warning"] = "";
        }
        auto hold = idle::read_hold(f);
        bool held = hold.in_force(j["now"].get<double>());
        j["hold"] = {{"active", held}, {"until", hold.until}};
        if (held) j["warning"] = "";
        std::printf("%s\n", j.dump().c_str());
        std::exit(0);
    });
    auto *set = id->add_subcommand("set", "change the idle time of this machine");
    static long set_seconds = -1;
    set->add_option("--seconds", set_seconds, "0: off")->required();
    set->callback([] {
        auto f = idle::machine_files();
        auto s = idle::read_setting(f);
        if (!s || set_seconds < 0) {
            std::fprintf(stderr, "berth: error: %s\n",
                         s ? "bad --seconds" : s.error().line().c_str());
            std::exit(1);
        }
        s->policy.idle_seconds = set_seconds;
        auto w = idle::write_setting(f, *s);
        if (!w) {
            std::fprintf(stderr, "berth: error: %s\n", w.error().line().c_str());
            std::exit(1);
        }
        std::printf("{\"idle_seconds\":%ld}\n", set_seconds);
        std::exit(0);
    });
    auto *sc = a->add_subcommand("scan", "sizes and mtimes of paths, as JSON (the destroy guard)");
    static std::string scan_root = "/";
    static std::vector<std::string> scan_paths;
    sc->add_option("--root", scan_root);
    sc->add_option("PATHS", scan_paths);
    sc->callback([] {
        auto r = scan_here(scan_root, scan_paths);
        if (!r) {
            std::fprintf(stderr, "berth: error: %s\n", r.error().line().c_str());
            std::exit(1);
        }
        nlohmann::json arr = nlohmann::json::array();
        for (const auto &e : *r)
            arr.push_back({{"path", e.path}, {"size", e.size}, {"mtime_ns", e.mtime_ns}});
        std::printf("%s\n", arr.dump().c_str());
        std::exit(0);
    });
    // A machine-direct request: one JSON line on stdin (it holds keys: never argv).
    auto request_line = [] {
        std::string line;
        int c;
        while ((c = std::getchar()) != EOF && c != '\n' && line.size() < (1u << 20))
            line.push_back(static_cast<char>(c));
        return line;
    };
    a->add_subcommand("save-direct",
                      "save this machine's files straight to an SSH repository (request on stdin)")
        ->callback([request_line] {
            auto d = parse_direct_save(request_line());
            auto r = d ? save_direct_here(*d) : Result<SaveResult>(tl::unexpected(d.error()));
            if (!r) {
                std::fprintf(stderr, "berth: error: %s\n", r.error().line().c_str());
                std::exit(1);
            }
            nlohmann::json out{
                {"snapshot", nlohmann::json::parse(store::snapshot_json(r->snapshot))},
                {"unchanged", r->tree_unchanged},
                {"bytes_read", r->stats.bytes_read}};
            std::printf("%s\n", out.dump().c_str());
            std::exit(0);
        });
    a->add_subcommand("restore-direct",
                      "restore a snapshot from an SSH repository straight onto this machine "
                      "(request on stdin)")
        ->callback([request_line] {
            auto d = parse_direct_save(request_line());
            auto r = d ? restore_direct_here(*d)
                       : Result<store::RestoreStats>(tl::unexpected(d.error()));
            if (!r) {
                std::fprintf(stderr, "berth: error: %s\n", r.error().line().c_str());
                std::exit(1);
            }
            nlohmann::json out{{"files", r->files},
                               {"dirs", r->dirs},
                               {"symlinks", r->symlinks},
                               {"bytes", r->bytes}};
            std::printf("%s\n", out.dump().c_str());
            std::exit(0);
        });
    a->add_subcommand("save-stream", "chunk and send files to a client's repository (stdin/stdout)")
        ->callback([] { std::exit(store::agent_save_stream(0, 1)); });
    a->add_subcommand("restore-stream",
                      "write files received from a client's repository (stdin/stdout)")
        ->callback([] { std::exit(store::agent_restore_stream(0, 1)); });
}

} // namespace berth::cli
