// The `local` provider: ephemeral machines on this box (see agent/machine.hpp for the inside).
//
// Each instance is a directory under $XDG_DATA_HOME/berth/local/instances/NAME holding what
// outlives a stop: the pinned SSH host key, the authorized key, /notebooks, the spec; and,
// while it runs, the agent's pid and machine.json. All instances share one store,
// $XDG_DATA_HOME/berth/local/storage, mounted as /storage. Offers are the host's GPUs.
#pragma once

#include "agent/machine.hpp"
#include "provider/registry.hpp"

#include <filesystem>

namespace berth {

class LocalProvider : public Provider {
public:
    explicit LocalProvider(std::filesystem::path root);
    std::string name() const override { return "local"; }
    Capabilities capabilities() const override;
    Result<std::vector<Offer>> offers(const nlohmann::json &search) override;
    Result<std::vector<MachineInfo>> list() override;
    Result<MachineInfo> create(const InstanceSpec &spec) override;
    Result<MachineInfo> describe(const std::string &id) override;
    Result<> stop(const std::string &id) override;
    Result<> start(const std::string &id) override;
    Result<> destroy(const std::string &id) override;
    std::optional<std::filesystem::path> host_path(const std::string &id,
                                                   const std::string &path) override;

    std::filesystem::path store() const { return m_root / "storage"; }
    InstanceDir instance(const std::string &id) const { return {m_root / "instances" / id}; }

    // The binary that runs `agent boot` (default: this process's own executable).
    void set_agent_binary(std::filesystem::path p) { m_agent_binary = std::move(p); }
    // Lets one more public key log in, while the machine runs too.
    Result<> add_authorized_key(const std::string &id, const std::string &key);
    // Stops a key added so from logging in (sshd reads the file at every login).
    Result<> remove_authorized_key(const std::string &id, const std::string &key);
    // The machine's root as the host sees it while it runs (/proc/PID/root), or nullopt.
    std::optional<std::filesystem::path> machine_root(const std::string &id) const;

    // Parses `nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits`.
    static std::vector<Offer> parse_nvidia_smi(const std::string &csv);
    static Offer local_offer(const std::string &id, const std::string &gpu, int count,
                             double vram_gb);

private:
    Result<int> agent_pid(const std::string &id) const;
    std::filesystem::path m_root;
    std::filesystem::path m_agent_binary;
};

std::filesystem::path local_provider_root();

Capabilities local_capabilities();

// The registry row.
ProviderRow local_provider_row();

} // namespace berth
