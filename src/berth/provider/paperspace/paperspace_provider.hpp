// The `paperspace` provider: Paperspace Core machines through API v1
// (../shared/paperspace/SPEC.md §8). Translation only, as every provider.
//
// A machine is named berth-NAME at Paperspace (v1 has no labels). Its SSH key arrives by a
// run-once startup script (v1 has no key endpoint) for the `paperspace` user. The disk is kept
// across stop/start; a public IP is dynamic (it changes at every start: the host key is
// pinned by the machine's name, never its address). `--max-hours` is also set as the
// machine's autoShutdownTimeout, a backstop Paperspace enforces even if the agent dies.
#pragma once

#include "provider/paperspace/paperspace_api.hpp"
#include "provider/registry.hpp"

namespace berth {

class PaperspaceProvider : public Provider {
public:
    PaperspaceProvider(paperspace::Credentials c, HttpSender send, HttpSender send_once);
    std::string name() const override { return "paperspace"; }
    Capabilities capabilities() const override;
    Result<std::vector<Offer>> offers(const nlohmann::json &search) override;
    Result<UpPlan> plan(InstanceSpec spec, const Options &opt) override;
    Result<MachineInfo> create(const InstanceSpec &spec) override;
    Result<MachineInfo> describe(const std::string &id) override;
    Result<> stop(const std::string &id) override;
    Result<> start(const std::string &id) override;
    Result<> destroy(const std::string &id) override;
    Result<std::vector<MachineInfo>> list() override;
    Result<> attach_key(const std::string &id, const std::string &public_key) override;
    Result<> forget(const std::string &name) override;
    std::string api_url() const override { return m_creds.base_url; }
    Result<std::optional<Standing>> standing() override;

    // The account's standing (GET /billing/account-standing): an error saying why when a
    // create would be refused.
    Result<> check_standing();

private:
    Result<nlohmann::json> call(const std::string &method, const std::string &path,
                                const nlohmann::json &body, const std::string &what,
                                bool once = false);
    Result<std::vector<nlohmann::json>> all(const std::string &path, const std::string &what);
    Result<std::vector<nlohmann::json>> templates();
    Result<> remove_key_script(const std::string &machine_name);
    paperspace::Credentials m_creds;
    HttpSender m_send, m_send_once;
};

Capabilities paperspace_capabilities();
ProviderRow paperspace_provider_row();

} // namespace berth
