// berth agent boot: the process that is the machine (see agent/machine.hpp). Not for users.
#include "agent/machine.hpp"
#include "cli/commands.hpp"
#include "store/stream.hpp"

#include <cstdlib>

namespace berth::cli {

void add_agent(CLI::App &app, Context &) {
    auto *a =
        app.add_subcommand("agent", "the agent side of berth (run by providers, not by hand)");
    a->require_subcommand(1);
    auto *boot = a->add_subcommand("boot", "run an instance directory as a machine");
    static std::string dir, storage;
    boot->add_option("--instance", dir)->required();
    boot->add_option("--storage", storage)->required();
    boot->callback([] { std::exit(run_machine_agent(InstanceDir{dir}, storage)); });
    a->add_subcommand("save-stream", "chunk and send files to a client's repository (stdin/stdout)")
        ->callback([] { std::exit(store::agent_save_stream(0, 1)); });
    a->add_subcommand("restore-stream",
                      "write files received from a client's repository (stdin/stdout)")
        ->callback([] { std::exit(store::agent_restore_stream(0, 1)); });
}

} // namespace berth::cli
