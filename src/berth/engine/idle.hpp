// Idle stop from the laptop's side: what `berth idle`, `berth hold`, `berth status` and
// `berth ls` ask a running machine's watcher (agent/watch.hpp) over SSH. The decision is
// never made here: a sleeping laptop must not keep a machine up, nor stop one.
#pragma once

#include "engine/lifecycle.hpp"

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace berth {

// The machine's ~/.berth/idle-status.json (schema berth.idle/1) plus "now", the machine's
// clock. Fails when the machine does not answer within `timeout`.
Result<nlohmann::json> idle_status(const InstanceRecord &r,
                                   std::chrono::seconds timeout = std::chrono::seconds(20));
// idle_status for many machines at once (ls): one answer (or nullopt) per record.
std::vector<std::optional<nlohmann::json>> idle_status_all(const std::vector<InstanceRecord> &rs);

// Changes the idle time of a running machine (0: off) and records it, so the next start
// applies it again.
Result<> set_idle(StateDb &db, InstanceRecord r, long seconds);
// Holds a machine up for `seconds` (0: until released), or releases the hold.
Result<> hold_machine(const InstanceRecord &r, long seconds, bool release);

// The record's idle setting ("idle" in its spec): {"seconds", "cpu_percent", ...}.
nlohmann::json idle_spec(const InstanceRecord &r);

// "stops in 12m (idle)", "held", "idle off", "stops in 3h (max-hours)", for a status answer.
std::string stops_in(const nlohmann::json &status);

} // namespace berth
