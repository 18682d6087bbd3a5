// The `vast` provider: Vast.ai's marketplace through its REST API (SPEC: ../shared/vastai).
//
// Translation only, as every provider: calls become requests (vast_api.hpp builds and parses
// them), answers become MachineInfo. Two senders come from the engine: `send` retries what is
// safe to retry (429, 502-504, timeouts), `send_once` does not, for the one call that is not
// idempotent (creating an instance), which this class makes safe itself: before asking again
// it looks for an instance carrying the label it asked for.
#pragma once

#include "provider/registry.hpp"
#include "provider/vast/vast_api.hpp"

#include <functional>

namespace berth {

class VastProvider : public Provider {
public:
    VastProvider(vast::Credentials c, HttpSender send, HttpSender send_once);
    std::string name() const override { return "vast"; }
    Capabilities capabilities() const override;
    Result<std::vector<Offer>> offers(const nlohmann::json &search) override;
    Result<UpPlan> plan(InstanceSpec spec, const Options &opt) override;
    Result<MachineInfo> create(const InstanceSpec &spec) override;
    Result<MachineInfo> describe(const std::string &id) override;
    Result<> stop(const std::string &id) override;
    Result<> start(const std::string &id) override;
    Result<> destroy(const std::string &id) override;
    Result<std::vector<MachineInfo>> list() override;
    Result<std::optional<double>> credit() override;
    Result<> attach_key(const std::string &id, const std::string &public_key) override;
    std::string api_url() const override { return m_creds.base_url; }

    // The raw offer (for its min_bid and prices), or an error naming the id.
    Result<nlohmann::json> offer(const std::string &id);
    // Registers the public key with the account unless it is there already.
    Result<> ensure_key(const std::string &public_key);

private:
    Result<nlohmann::json> pick_offer(const std::string &query, const std::string &type,
                                      double disk);
    Result<nlohmann::json> call(const std::string &method, const std::string &path,
                                const nlohmann::json &body, const std::string &what);
    vast::Credentials m_creds;
    HttpSender m_send, m_send_once;
};

Capabilities vast_capabilities();

// The registry row: options, construction, and the machine's own stop request.
ProviderRow vast_provider_row();

// On the machine: PUT {"label":"berth:NAME | reason"} then {"state":"stopped"} for
// $CONTAINER_ID with $CONTAINER_API_KEY, read from `env_file` (kept there by berth's onstart,
// since SSH sessions do not inherit the container's environment), through the machine's curl
// or python3, the key on stdin.
Result<> vast_self_stop(const std::string &api_url, const std::string &env_file,
                        const std::string &label, const std::string &reason);

} // namespace berth
