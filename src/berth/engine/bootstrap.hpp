// The bootstrap of any machine reached over SSH (Vast today; a plain ssh host next): upload
// berth's static agent unless the same build is there, then run `berth agent bootstrap` on
// the machine (persistence, Jupyter, the max-hours watchdog; see agent/bootstrap.hpp).
#pragma once

#include "agent/idle.hpp"
#include "remote/ssh.hpp"
#include "util/result.hpp"

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace berth {

struct BootstrapPlan {
    std::string workdir = "/workspace";
    double max_hours = 0;
    long idle_seconds = 0;
    idle::Thresholds thresholds;
    std::string api_url;   // for the watcher
    std::string provider;  // whose self-stop the watcher runs
    std::string label;     // "berth:NAME"
    std::string store;     // "": the agent's default (<workdir>/.berth/storage)
    std::string agent_dir; // "": ~/.berth (one machine per home)
    bool link_home = true;
};

struct Bootstrapped {
    int jupyter_port = 0;
    std::string jupyter_token;
    bool uploaded = false; // the agent was (re)sent
    nlohmann::json report; // the agent's own JSON
};

Result<Bootstrapped> bootstrap_over_ssh(const ssh::Target &t, const BootstrapPlan &plan,
                                        const std::function<void(const std::string &)> &progress);

} // namespace berth
