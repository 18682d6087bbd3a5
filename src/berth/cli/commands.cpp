#include "cli/commands.hpp"

#include "util/term.hpp"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace berth::cli {

const std::vector<CommandInfo> &command_table() {
    static const std::vector<CommandInfo> table = {
        {"offers",
         "find and rank offers across providers, priced for your session",
         {},
         add_offers},
        {"up", "create a machine; returns when SSH and Jupyter answer", {}, add_up},
        {"ls", "list instances (--reconcile: rebuild from the provider)", {}, add_ls},
        {"account", "credit, burn rate, hours left, and what each machine cost", {}, add_account},
        {"status", "one instance: state, endpoints, intent log", {}, nullptr},
        {"ssh", "a shell or a command on an instance (OpenSSH)", {}, nullptr},
        {"ssh-config", "let `ssh berth-NAME` and VS Code reach instances", {}, nullptr},
        {"jupyter", "tunnel to an instance's Jupyter; print or --open the URL", {}, nullptr},
        {"start", "start a stopped instance", {}, nullptr},
        {"idle",
         "change when a machine stops itself for want of activity (45m, 2h, off)",
         {},
         add_idle},
        {"hold",
         "keep a machine up whatever its idle clock says (--for 3h; --release); on the "
         "machine, without NAME",
         {},
         nullptr},
        {"stop",
         "stop: ephemeral disk and $HOME discarded, /storage and /notebooks kept",
         {},
         nullptr},
        {"destroy", "remove an instance and its /notebooks (/storage kept)", {}, nullptr},
        {"save",
         "snapshot an instance's work (or a directory): incremental, deduplicated",
         {},
         add_save},
        {"restore", "restore a snapshot onto any instance, or into a directory", {}, nullptr},
        {"snapshots", "list snapshots in the repository", {}, nullptr},
        {"diff", "what changed between two snapshots", {}, nullptr},
        {"verify", "re-hash every chunk in the repository", {}, nullptr},
        {"forget", "remove a snapshot", {}, nullptr},
        {"prune", "delete data no snapshot uses", {}, nullptr},
        {"repo",
         "the snapshot repository's own commands",
         {{"serve", "serve a repository directory on stdin/stdout (what ssh:// repositories run)"},
          {"allow-machines",
           "let machines save to an ssh:// (append-only key) or s3: repository themselves"},
          {"init", "make a repository (encrypted; a passphrase or a key file holds its key)"},
          {"info", "where a repository is, its format, encryption, keys and size"},
          {"key", "a repository's keys: `key add` a passphrase, `key passwd`, `key list`"}},
         nullptr},
        {"persist",
         "keep $HOME's config and installs across ephemeral machines",
         {{"init", "create the store and persist the default set"},
          {"add", "persist one more path (moved in safely, then linked)"},
          {"remove", "stop persisting a path (its data is copied back)"},
          {"restore", "the boot hook: relink everything, finish interrupted moves"},
          {"status", "what is persisted, linked, drifted, and its size"}},
         add_persist},
        {"hook",
         "run `persist restore` at every boot",
         {{"install", "write the boot hook (--paperspace, --bashrc or --systemd)"},
          {"uninstall", "remove berth's lines from the boot hook"}},
         add_hook},
        {"keys",
         "SSH keys that survive the machine",
         {{"generate", "create an ed25519 key on this machine"},
          {"import", "import key files (refuses a private key where a public one belongs)"},
          {"list", "list keys with fingerprints"},
          {"test", "check a key against GitHub (or HOST) and name the cause of a failure"}},
         add_keys},
        {"doctor", "check the machine and print the fix for each problem", {}, add_doctor},
        {"perms",
         "explain a permission mode like 744",
         {{"explain", "say what a mode means"}},
         add_perms},
        {"config",
         "show and change settings",
         {{"show", "every setting with where it came from"},
          {"get", "one setting's value"},
          {"set", "write a setting to the config file"},
          {"path", "the config file's path"}},
         add_config},
        {"completion", "print shell completion: bash, zsh or fish", {}, add_completion},
        {"man", "print berth's manual page (roff): berth man | man -l -", {}, nullptr},
        {"version", "print berth's version", {}, add_version},
        {"help", "list commands, or describe one", {}, add_help},
        {"agent", "the agent side (run by providers)", {}, add_agent},
    };
    return table;
}

CLI::App *command(CLI::App &app, const char *name) {
    for (const auto &c : command_table())
        if (std::string(c.name) == name) {
            return app.add_subcommand(c.name, c.summary);
        }
    throw std::logic_error(std::string("command '") + name + "' is not in the command table");
}

CLI::App *subcommand(CLI::App &cmd, const char *parent, const char *name) {
    for (const auto &c : command_table())
        if (std::string(c.name) == parent)
            for (const auto &[sub, summary] : c.subcommands)
                if (std::string(sub) == name) return cmd.add_subcommand(sub, summary);
    throw std::logic_error(std::string("subcommand '") + parent + " " + name +
                           "' is not in the command table");
}

void print_help() {
    std::printf("berth: rented GPU machines that feel like your own workstation\n\n");
    std::printf("usage: berth [--json] [--store DIR] [--home DIR] [-c KEY=VALUE] COMMAND ...\n\n");
    std::printf("commands:\n");
    for (const auto &c : command_table()) {
        std::string name = c.name;
        name.resize(std::max<std::size_t>(name.size(), 10),
                    ' '); // pad first: escapes have no width
        std::printf("  %s %s\n", term::paint(name, term::Color::bold).c_str(), c.summary);
        for (const auto &[sub, summary] : c.subcommands)
            std::printf("    %-17s %s\n", (std::string(c.name) + " " + sub).c_str(), summary);
    }
    std::printf("\n`berth COMMAND --help` shows a command's options. Exit codes: 0 ok, 1 failed,\n"
                "2 usage error, 3 problems found (doctor, keys test), 4 store busy.\n");
}

} // namespace berth::cli
