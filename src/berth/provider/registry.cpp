// The provider registry: one row per provider.
#include "engine/retry.hpp"
#include "provider/local/local_provider.hpp"
#include "provider/provider.hpp"
#include "provider/vast/vast_provider.hpp"

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

Result<std::unique_ptr<Provider>> make_provider(const std::string &name,
                                                const ProviderOptions &opt) {
    if (name == "local") return std::unique_ptr<Provider>(new LocalProvider(local_provider_root()));
    if (name == "vast") {
        auto c = vast::load_credentials(opt.api_key);
        if (!c) return tl::unexpected(c.error());
        return std::unique_ptr<Provider>(new VastProvider(
            *c, [](const http::Request &r) { return send_with_retry(r); },
            [](const http::Request &r) { return http::send(r); }));
    }
    return fail("unknown provider '" + name + "'", "the providers are: local, vast", 2);
}

} // namespace berth
