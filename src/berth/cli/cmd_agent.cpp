// berth agent boot: the process that is the machine (see agent/machine.hpp). Not for users.
#include "agent/bootstrap.hpp"
#include "agent/machine.hpp"
#include "cli/commands.hpp"
#include "engine/workspace.hpp"
#include "provider/registry.hpp"
#include "store/stream.hpp"

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
        "bootstrap", "prepare a rented machine: persistence, Jupyter, the max-hours watchdog");
    static BootstrapOptions bo;
    bs->add_option("--workdir", bo.workdir, "the machine's kept work directory");
    bs->add_option("--store", bo.store, "the persistence store (default <workdir>/.berth/storage)");
    bs->add_option("--max-hours", bo.max_hours, "stop the machine after H hours (0: never)");
    bs->add_option("--api-url", bo.api_url, "the provider API the watchdog calls");
    bs->add_option("--provider", bo.provider, "whose self-stop the watchdog runs");
    bs->callback([] {
        auto r = bootstrap_machine(bo);
        if (!r) {
            std::fprintf(stderr, "berth: error: %s\n", r.error().line().c_str());
            std::exit(r.error().code ? r.error().code : 1);
        }
        std::printf("%s\n", r->dump().c_str());
        std::exit(0);
    });
    auto *wd =
        a->add_subcommand("watchdog", "stop this machine through the provider at a deadline");
    static long long deadline = 0;
    static std::string api_url, provider;
    wd->add_option("--deadline", deadline)->required();
    wd->add_option("--api-url", api_url);
    wd->add_option("--provider", provider);
    wd->callback([] {
        std::function<Result<>()> stop;
        auto row = builtin_registry().find(provider);
        if (row && (*row)->self_stop) stop = [f = (*row)->self_stop] { return f(api_url); };
        std::exit(run_watchdog(deadline, stop));
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
