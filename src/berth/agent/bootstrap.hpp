// A rented machine, from the inside: `berth agent bootstrap` (run by the client over SSH once
// the provider says the machine runs; the static build, uploaded by the client).
//
// It does what the seed tutorials do by hand after every boot, idempotently:
//   1. persistence: links the store's paths into $HOME (init on a new store, restore after);
//   2. Jupyter on 127.0.0.1 with a token, rooted at the work directory, detached from the SSH
//      session (reused if the one from this boot still answers);
//   3. with --max-hours, a watchdog that stops the machine through the provider's API when
//      the time is up, with no client anywhere (`berth agent watchdog`).
// It prints one JSON line (schema berth.bootstrap/1) the client reads.
#pragma once

#include "util/result.hpp"

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace berth {

struct BootstrapOptions {
    std::string workdir = "/workspace";
    std::string store; // "": <workdir>/.berth/storage
    double max_hours = 0;
    std::string api_url;  // where the watchdog asks the provider to stop this machine
    std::string provider; // whose self-stop the watchdog runs (the registry's row)
};

Result<nlohmann::json> bootstrap_machine(const BootstrapOptions &o);

// Sleeps until `deadline` (epoch seconds), then stops this machine with `stop_self` (the
// provider's own request, from its registry row), retrying with backoff. Logs to stderr.
int run_watchdog(long long deadline, const std::function<Result<>()> &stop_self);

} // namespace berth
