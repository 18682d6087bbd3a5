// The command table: every top-level command, its one-line summary, and the function that
// adds it to the parser. `berth help` and "did you mean" read this table.
#pragma once

#include "cli/context.hpp"

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

namespace berth::cli {

struct CommandInfo {
    const char *name;
    const char *summary;
    std::vector<std::pair<const char *, const char *>> subcommands; // name, summary
    void (*add)(CLI::App &app, Context &ctx);
};

const std::vector<CommandInfo> &command_table();

// Adds a top-level command with its summary from the table (the only place summaries live).
CLI::App *command(CLI::App &app, const char *name);
// Adds a subcommand of command `parent`, with its summary from the table.
CLI::App *subcommand(CLI::App &cmd, const char *parent, const char *name);

void add_version(CLI::App &, Context &);
void add_help(CLI::App &, Context &);
void add_config(CLI::App &, Context &);
void add_persist(CLI::App &, Context &);
void add_hook(CLI::App &, Context &);
void add_keys(CLI::App &, Context &);
void add_doctor(CLI::App &, Context &);
void add_perms(CLI::App &, Context &);
void add_up(CLI::App &, Context &);
void add_ls(CLI::App &, Context &);
void add_idle(CLI::App &, Context &);
void add_agent(CLI::App &, Context &);
void add_save(CLI::App &, Context &);
void add_offers(CLI::App &, Context &);
void add_account(CLI::App &, Context &);
void add_completion(CLI::App &, Context &);

// provider.NAME.KEY config keys, from the registry's rows (main, before loading the config).
void register_provider_config();

// Prints the command list (berth help).
void print_help();

} // namespace berth::cli
