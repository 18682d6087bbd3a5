// The provider registry: one row per provider.
#include "provider/registry.hpp"

#include "core/json_read.hpp"
#include "provider/local/local_provider.hpp"
#include "provider/paperspace/paperspace_provider.hpp"
#include "provider/slurm/slurm_provider.hpp"
#include "provider/ssh/host_provider.hpp"
#include "provider/vast/vast_provider.hpp"
#include "util/http_retry.hpp"
#include "util/strings.hpp"

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

std::string berth_label(const std::string &name) {
    return "berth:" + name;
}

std::string name_from_label(const std::string &label) {
    if (label.rfind("berth:", 0) != 0) return {};
    return label.substr(6, label.find(" | ") == std::string::npos ? std::string::npos
                                                                  : label.find(" | ") - 6);
}

std::string label_note(const std::string &label) {
    auto at = label.find(" | ");
    return label.rfind("berth:", 0) == 0 && at != std::string::npos ? label.substr(at + 3)
                                                                    : std::string();
}

ProviderRegistry::ProviderRegistry(std::vector<ProviderRow> rows, HttpSender send,
                                   HttpSender send_once)
    : m_rows(std::move(rows)), m_send(std::move(send)), m_send_once(std::move(send_once)) {}

std::vector<std::string> ProviderRegistry::names() const {
    std::vector<std::string> out;
    for (const auto &r : m_rows)
        out.push_back(r.name);
    return out;
}

Result<const ProviderRow *> ProviderRegistry::find(const std::string &name) const {
    for (const auto &r : m_rows)
        if (r.name == name) return &r;
    auto near = str::closest(name, names());
    return fail(ErrorKind::user, "unknown provider '" + jsonr::clean_line(name, 60) + "'",
                near ? "did you mean '" + *near + "'?"
                     : "the providers are: " + str::join(names(), ", "),
                2);
}

Result<std::unique_ptr<Provider>> ProviderRegistry::make(const std::string &name,
                                                         const Options &opt) const {
    auto row = find(name);
    if (!row) return tl::unexpected(row.error());
    for (const auto &[k, v] : opt) {
        bool known = false;
        for (const auto &o : (*row)->options)
            known = known || o.name == k;
        if (!known)
            return fail(ErrorKind::user, "--" + k + " is not an option of provider " + name,
                        "see `berth up --help` for each provider's options", 2);
    }
    return (*row)->make({opt, m_send, m_send_once});
}

std::vector<ProviderRow> builtin_provider_rows() {
    return {local_provider_row(), vast_provider_row(), paperspace_provider_row(),
            ssh_host_provider_row(), slurm_provider_row()};
}

const ProviderRegistry &builtin_registry() {
    static const ProviderRegistry r(
        builtin_provider_rows(), [](const http::Request &q) { return send_with_retry(q); },
        [](const http::Request &q) { return send_once(q); });
    return r;
}

} // namespace berth
