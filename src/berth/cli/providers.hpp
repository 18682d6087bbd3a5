// The CLI's side of the provider registry: each provider's options become flags (registered
// once, from the rows, on every command that takes them) and config keys
// (`provider.NAME.KEY`); a command gets a provider's options as flags over its config section.
#pragma once

#include "cli/context.hpp"
#include "provider/registry.hpp"

#include <CLI/CLI.hpp>
#include <map>
#include <string>

namespace berth::cli {

// The registry every command uses (builtin_registry(), with the config's HTTP deadline).
const ProviderRegistry &registry(const Context &ctx);

// Flags given on the command line, by option name (filled while parsing).
using FlagValues = std::map<std::string, std::string>;

// Adds every provider's options to cmd ("--offer", ...), each once, its help naming the
// providers that take it. `everywhere_only`: only credentials and the like (offers, account).
void add_provider_flags(CLI::App *cmd, FlagValues &given, bool everywhere_only = false);

// The options for one provider: its config section, then the flags given that it takes.
// A flag given that this provider does not take is a usage error naming the provider that
// does, unless `lenient` (offers across all providers).
Options provider_options(const Context &ctx, const ProviderRow &row, const FlagValues &given,
                         bool lenient = false);

// provider.NAME.KEY for every row's config options (main registers them before loading).
void register_provider_config();

} // namespace berth::cli
