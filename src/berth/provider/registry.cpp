// The provider registry: one row per provider.
#include "provider/local/local_provider.hpp"
#include "provider/provider.hpp"

namespace berth {

const char *machine_state_name(MachineState s) {
    switch (s) {
    case MachineState::provisioning:
        return "provisioning";
    case MachineState::loading:
        return "loading";
    case MachineState::running:
        return "running";
    case MachineState::stopped:
        return "stopped";
    case MachineState::exited:
        return "exited";
    case MachineState::gone:
        return "gone";
    }
    return "?";
}

Result<std::unique_ptr<Provider>> make_provider(const std::string &name) {
    if (name == "local") return std::unique_ptr<Provider>(new LocalProvider(local_provider_root()));
    return fail("unknown provider '" + name + "'", "the providers are: local", 2);
}

} // namespace berth
