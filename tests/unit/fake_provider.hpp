// A provider for tests: machines in memory, and a fault at any call. Every call goes through
// `hit(call)`, which applies the fault set for that call:
//   error        the call fails with that kind and does nothing
//   lost         the call does its work, then fails (the answer was lost on the way back)
//   lost_once    the first time `lost`, then normal (success after a lost answer)
//   hang         the call waits hang_ms, then fails with kind timeout (a deadline passed)
// and `on_call` runs first (to raise an interrupt between two steps, say).
#pragma once

#include "provider/registry.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <thread>

namespace berth::test {

struct Fault {
    enum Mode { none, error, lost, lost_once, hang } mode = none;
    ErrorKind kind = ErrorKind::network;
    int hang_ms = 0;
    int times = -1; // how many calls it applies to (-1: all)
};

struct FakeWorld {
    std::map<std::string, MachineInfo> machines;
    std::map<std::string, Fault> faults;
    std::map<std::string, int> calls;
    std::function<void(const std::string &)> on_call;
    int next_id = 100;
    // What plan() picks, call after call (a marketplace's best offer now); empty: no offer.
    std::vector<std::string> plan_offers;
    int plans = 0;
    int describes_until_running = 1;
    std::map<std::string, int> described;
};

class FakeProvider : public Provider {
public:
    explicit FakeProvider(std::shared_ptr<FakeWorld> w) : m_w(std::move(w)) {}
    std::string name() const override { return "fake"; }
    Capabilities capabilities() const override { return caps(); }
    static Capabilities caps() {
        Capabilities c;
        c.billed = true;
        c.lists_machines = true;
        c.bootstrap_over_ssh = true;
        c.workdir = "/workspace";
        c.destroy_loses = {"workspace"};
        c.poll_interval = std::chrono::milliseconds(1);
        return c;
    }
    Result<std::vector<Offer>> offers(const nlohmann::json &) override {
        Offer a;
        a.provider = "fake";
        a.id = "1";
        a.gpu_name = "RTX 4090";
        a.gpu_count = 1;
        a.vram_gb = 24;
        a.price_per_hour = 0.4;
        Offer b = a;
        b.id = "2";
        b.gpu_count = 4;
        return std::vector<Offer>{a, b};
    }
    Result<UpPlan> plan(InstanceSpec spec, const Options &) override {
        if (!m_w->plan_offers.empty()) {
            auto i = static_cast<std::size_t>(m_w->plans++);
            if (i >= m_w->plan_offers.size()) return fail("no offer left");
            spec.offer_id = m_w->plan_offers[i];
        }
        return UpPlan{std::move(spec), {}, {}};
    }
    Result<MachineInfo> create(const InstanceSpec &spec) override {
        return act("create", [&]() -> Result<MachineInfo> {
            MachineInfo m;
            m.id = std::to_string(m_w->next_id++);
            m.state = MachineState::loading;
            m.label = spec.label;
            m.rent_per_hour = 0.5;
            m_w->machines[m.id] = m;
            return m;
        });
    }
    Result<MachineInfo> describe(const std::string &id) override {
        return act("describe", [&]() -> Result<MachineInfo> {
            auto it = m_w->machines.find(id);
            if (it == m_w->machines.end()) {
                MachineInfo g;
                g.id = id;
                g.state = MachineState::gone;
                return g;
            }
            auto &m = it->second;
            if (m.state == MachineState::loading &&
                ++m_w->described[id] >= m_w->describes_until_running) {
                m.state = MachineState::running;
                m.ssh = {"127.0.0.1", 2222, "root", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake"};
                m.jupyter_port = 8888;
                m.jupyter_token = "abc";
            }
            return m;
        });
    }
    Result<> stop(const std::string &id) override {
        return act("stop", [&]() -> Result<> {
            auto it = m_w->machines.find(id);
            if (it == m_w->machines.end()) return fail(ErrorKind::not_found, "no machine " + id);
            it->second.state = MachineState::stopped;
            return {};
        });
    }
    Result<> start(const std::string &id) override {
        return act("start", [&]() -> Result<> {
            auto it = m_w->machines.find(id);
            if (it == m_w->machines.end()) return fail(ErrorKind::not_found, "no machine " + id);
            it->second.state = MachineState::loading;
            m_w->described[id] = 0;
            return {};
        });
    }
    Result<> destroy(const std::string &id) override {
        return act("destroy", [&]() -> Result<> {
            m_w->machines.erase(id);
            return {};
        });
    }
    Result<std::vector<MachineInfo>> list() override {
        return act("list", [&]() -> Result<std::vector<MachineInfo>> {
            std::vector<MachineInfo> out;
            for (const auto &[id, m] : m_w->machines)
                out.push_back(m);
            return out;
        });
    }

private:
    template <class F> auto act(const std::string &call, F work) -> decltype(work()) {
        ++m_w->calls[call];
        if (m_w->on_call) m_w->on_call(call);
        auto it = m_w->faults.find(call);
        if (it == m_w->faults.end() || it->second.mode == Fault::none || it->second.times == 0)
            return work();
        Fault &f = it->second;
        if (f.times > 0) --f.times;
        switch (f.mode) {
        case Fault::error:
            return fail(f.kind, "fake " + call + " failed");
        case Fault::hang:
            std::this_thread::sleep_for(std::chrono::milliseconds(f.hang_ms));
            return fail(ErrorKind::timeout, "fake " + call + " gave no answer in time");
        case Fault::lost_once:
            f.mode = Fault::none;
            [[fallthrough]];
        case Fault::lost: {
            auto r = work();
            (void)r;
            return fail(ErrorKind::network, "fake " + call + ": the answer was lost");
        }
        case Fault::none:
            break;
        }
        return work();
    }
    std::shared_ptr<FakeWorld> m_w;
};

// A registry holding only the fake, built on `world`.
inline ProviderRegistry fake_registry(std::shared_ptr<FakeWorld> world) {
    ProviderRow row;
    row.name = "fake";
    row.summary = "in-memory machines for tests";
    row.capabilities = FakeProvider::caps();
    row.make = [world](const ProviderContext &) -> Result<std::unique_ptr<Provider>> {
        return std::unique_ptr<Provider>(new FakeProvider(world));
    };
    return ProviderRegistry({row}, nullptr, nullptr);
}

} // namespace berth::test
