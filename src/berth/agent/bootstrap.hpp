// A rented machine, from the inside: `berth agent bootstrap` (run by the client over SSH once
// the provider says the machine runs; the static build, uploaded by the client).
//
// It does what the seed tutorials do by hand after every boot, idempotently:
//   1. persistence: links the store's paths into $HOME (init on a new store, restore after);
//   2. Jupyter on 127.0.0.1 with a token, rooted at the work directory, detached from the SSH
//      session (reused if the one from this boot still answers);
//   3. the watcher (`berth agent watch`, agent/watch.hpp): idle stop and the --max-hours
//      deadline, stopping the machine through the provider's API with no client anywhere.
// It prints one JSON line (schema berth.bootstrap/1) the client reads.
#pragma once

#include "agent/idle.hpp"
#include "util/result.hpp"

#include <nlohmann/json.hpp>
#include <string>

namespace berth {

struct BootstrapOptions {
    std::string workdir = "/workspace";
    std::string store; // "": <workdir>/.berth/storage ("~/..." is under $HOME, as workdir)
    // Link the home's persisted paths into the store (init, or restore after a boot). Off
    // where the home is itself kept (an SSH host, a cluster's shared home): the store is made
    // and kept, the home is left as the user has it.
    bool link_home = true;
    double max_hours = 0;
    long idle_seconds = 0; // 0: idle stop off
    idle::Thresholds thresholds;
    std::string api_url;  // where the watcher asks the provider to stop this machine
    std::string provider; // whose self-stop the watcher runs (the registry's row)
    std::string label;    // the machine's provider label ("berth:NAME"), for the stop's note
};

Result<nlohmann::json> bootstrap_machine(const BootstrapOptions &o);

} // namespace berth
