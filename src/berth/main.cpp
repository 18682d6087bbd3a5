// berth: one binary for the user's machine and the rented one.
// main() reads like a table of contents: find the command, load the configuration, parse,
// run, and turn an aborted command into one line and an exit code.
#include "cli/commands.hpp"
#include "core/exit_codes.hpp"
#include "core/paths.hpp"
#include "util/strings.hpp"
#include "util/term.hpp"
#include <malloc.h>

#include <cstdio>
#include <iostream>

using namespace berth;
using namespace berth::cli;

namespace {

int error_out(const Error &e, bool json) {
    if (json) print_json({{"error", {{"message", e.what}, {"fix", e.fix}, {"code", e.code}}}});
    std::cerr << term::paint("berth: error: ", term::Color::red, 2) << e.line() << std::endl;
    return e.code;
}

// Options that take a value, so the scan below can skip it.
bool takes_value(const std::string &a) {
    return a == "--store" || a == "--home" || a == "-c" || a == "--set";
}

// Positional words before any flag of a subcommand: {"persist", "add", ...}.
std::vector<std::string> positionals(const std::vector<std::string> &args) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--") break;
        if (takes_value(args[i])) {
            ++i;
            continue;
        }
        if (!args[i].empty() && args[i][0] == '-') continue;
        out.push_back(args[i]);
    }
    return out;
}

// "did you mean" for the command and its subcommand, before CLI11 sees them.
std::optional<Error> check_command_words(const std::vector<std::string> &words) {
    if (words.empty()) return std::nullopt;
    std::vector<std::string> names;
    const CommandInfo *cmd = nullptr;
    for (const auto &c : command_table()) {
        names.emplace_back(c.name);
        if (words[0] == c.name) cmd = &c;
    }
    if (!cmd) {
        auto near = str::closest(words[0], names);
        return Error{"unknown command '" + words[0] + "'",
                     near ? "did you mean '" + *near + "'?" : "see `berth help`", exit_code::usage};
    }
    if (cmd->subcommands.empty() || words.size() < 2 || std::string(cmd->name) == "help")
        return std::nullopt;
    std::vector<std::string> subs;
    for (const auto &s : cmd->subcommands) {
        if (words[1] == s.first) return std::nullopt;
        subs.emplace_back(s.first);
    }
    auto near = str::closest(words[1], subs);
    return Error{"unknown command 'berth " + words[0] + " " + words[1] + "'",
                 near ? "did you mean 'berth " + words[0] + " " + *near + "'?"
                      : "see `berth " + words[0] + " --help`",
                 exit_code::usage};
}

std::vector<std::string> config_overrides(const std::vector<std::string> &args) {
    std::vector<std::string> out;
    for (std::size_t i = 0; i + 1 < args.size() && args[i] != "--"; ++i)
        if (args[i] == "-c" || args[i] == "--set") out.push_back(args[i + 1]);
    return out;
}

Result<Config> load_config(const std::vector<std::string> &overrides) {
    auto cfg = Config::load(paths::config_file());
    if (!cfg) return cfg;
    for (const auto &kv : overrides) {
        auto eq = kv.find('=');
        if (eq == std::string::npos)
            return fail("-c " + kv + ": expected KEY=VALUE", "", exit_code::usage);
        BERTH_TRY(cfg->set_override(kv.substr(0, eq), kv.substr(eq + 1)));
    }
    return cfg;
}

int run(int argc, char **argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    bool json = std::find(args.begin(), std::find(args.begin(), args.end(), "--"), "--json") !=
                std::find(args.begin(), args.end(), "--");
    auto words = positionals(args);

    // `berth`, `berth help`, `berth help CMD`, `berth --version`
    if (args.empty() || (words.size() == 1 && words[0] == "help")) {
        print_help();
        return exit_code::ok;
    }
    if (words.size() >= 2 && words[0] == "help") {
        args = {words[1], "--help"};
        words.erase(words.begin());
    }
    if (auto bad = check_command_words(words)) return error_out(*bad, json);

    Context ctx;
    register_provider_config(); // provider.NAME.KEY, from the registry's rows
    auto cfg = load_config(config_overrides(args));
    if (!cfg) return error_out(cfg.error(), json);
    ctx.config = std::move(*cfg);

    CLI::App app{"berth: rented GPU machines that feel like your own workstation", "berth"};
    app.set_version_flag("-V,--version", BERTH_VERSION);
    app.require_subcommand(1);
    app.fallthrough();
    app.add_flag("--json", ctx.json, "machine-readable output (one JSON document, stable schema)");
    app.add_option("--store", ctx.store_flag,
                   "the persistent store (default: config `store`, then /storage)");
    app.add_option("--home", ctx.home_flag, "the home directory to manage (default: $HOME)");
    app.add_option("-c,--set", ctx.overrides, "override a config key for this run: KEY=VALUE");
    for (const auto &c : command_table())
        if (c.add) c.add(app, ctx);

    try {
        std::vector<std::string> rev(args.rbegin(), args.rend());
        app.parse(rev);
    } catch (const CLI::CallForHelp &) {
        std::cout << (app.get_subcommands().empty() ? app.help()
                                                    : app.get_subcommands().back()->help());
        return exit_code::ok;
    } catch (const CLI::CallForVersion &) {
        std::cout << "berth " << BERTH_VERSION << std::endl;
        return exit_code::ok;
    } catch (const CLI::ParseError &e) {
        std::string where = words.empty() ? "berth" : "berth " + words[0];
        return error_out(Error{e.what(), "see `" + where + " --help`", exit_code::usage}, json);
    } catch (const Abort &a) {
        return error_out(a.error, ctx.json);
    }
    return ctx.exit_code;
}

} // namespace

// Every exception ends here: a bug gets one line saying so and exit 1, never an abort.
int main(int argc, char **argv) {
    // Packs and windows are megabytes each: keep freed buffers in the heap for the next one
    // instead of handing them back to the kernel, where every reuse costs a page fault per
    // 4 KiB (measured: most of a remote verify's time on a paravirtualised machine).
    mallopt(M_MMAP_THRESHOLD, 128 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    bool json = false;
    for (int i = 1; i < argc; ++i)
        json = json || std::string(argv[i]) == "--json";
    try {
        return run(argc, argv);
    } catch (const std::exception &e) {
        return error_out(Error{std::string("internal error: ") + e.what(),
                               "this is a bug in berth; please report it with the command",
                               exit_code::failure},
                         json);
    } catch (...) {
        return error_out(Error{"internal error: an unknown exception",
                               "this is a bug in berth; please report it with the command",
                               exit_code::failure},
                         json);
    }
}
