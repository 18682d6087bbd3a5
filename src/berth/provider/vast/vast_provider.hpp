// The `vast` provider: Vast.ai's marketplace through its REST API (SPEC: ../shared/vastai).
//
// Translation only, as every provider: calls become requests (vast_api.hpp builds and parses
// them), answers become MachineInfo. Two senders come from the engine: `send` retries what is
// safe to retry (429, 502-504, timeouts), `send_once` does not, for the one call that is not
// idempotent (creating an instance), which this class makes safe itself: before asking again
// it looks for an instance carrying the label it asked for.
#pragma once

#include "provider/provider.hpp"
#include "provider/vast/vast_api.hpp"

#include <functional>

namespace berth {

using HttpSender = std::function<Result<http::Response>(const http::Request &)>;

class VastProvider : public Provider {
public:
    VastProvider(vast::Credentials c, HttpSender send, HttpSender send_once);
    std::string name() const override { return "vast"; }
    Result<std::vector<Offer>> offers() override;
    Result<MachineInfo> create(const InstanceSpec &spec) override;
    Result<MachineInfo> describe(const std::string &id) override;
    Result<> stop(const std::string &id) override;
    Result<> start(const std::string &id) override;
    Result<> destroy(const std::string &id) override;
    Result<std::vector<MachineInfo>> list() override;
    Result<std::optional<double>> credit() override;
    Result<> attach_key(const std::string &id, const std::string &public_key) override;
    std::string workdir() const override { return "/workspace"; }
    std::string api_url() const override { return m_creds.base_url; }

    // The raw offer (for its min_bid and prices), or an error naming the id.
    Result<nlohmann::json> offer(const std::string &id);
    // Registers the public key with the account unless it is there already.
    Result<> ensure_key(const std::string &public_key);

private:
    Result<nlohmann::json> call(const std::string &method, const std::string &path,
                                const nlohmann::json &body, const std::string &what);
    vast::Credentials m_creds;
    HttpSender m_send, m_send_once;
};

} // namespace berth
