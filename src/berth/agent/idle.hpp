// Idle stop: the rule, as pure functions (the machine's watcher feeds them; unit tests feed
// them fake readings and a fake clock). The rule, for users, is docs/IDLE.md.
//
// Every signal reports when it last saw activity. The machine's idle clock starts at the
// latest of them; once it has run `idle` seconds the machine stops. A signal that cannot be
// read counts as activity now (never "idle" by mistake); a signal that does not exist on
// this machine (no GPU) is "absent" and counts for nothing. A hold counts as activity until
// it ends. A warning goes out min(5 min, idle/2) before the stop. `--max-hours` is a hard
// deadline no signal and no hold postpones.
#pragma once

#include "util/result.hpp"

#include <string>
#include <vector>

namespace berth::idle {

// "45m", "2h", "90s", "1h30m", "1.5h", "off"/"0" -> seconds (0: off). Errors name the input.
Result<long> parse_duration(const std::string &text);
// 5400 -> "1h30m", 60 -> "1m", 90 -> "1m30s", 0 -> "off".
std::string format_duration(long seconds);

enum class Level { quiet, busy, absent, unreadable };
const char *level_name(Level l);

// One signal's reading now: its level, the last time it saw activity (epoch seconds; 0 never
// or unknown), and a value a person reads ("1 kernel busy", "3.2% of a core").
struct Reading {
    std::string signal; // "jupyter", "ssh", "gpu", "cpu", "network"
    Level level = Level::quiet;
    double last_active = 0;
    std::string value;
};

struct Thresholds {
    double cpu_percent = 10;  // user processes, percent of one core, averaged over a tick
    double network_kbps = 50; // kB/s in + out on every interface but loopback
    double gpu_percent = 5;   // utilisation of the busiest GPU
};

struct Policy {
    long idle_seconds = 0;   // 0: idle stop off
    double deadline = 0;     // --max-hours, epoch seconds; 0: none
    long warn_seconds = 300; // warning ahead of the stop (at most idle/2)
};

// A hold: none, until released (until == 0), or until an epoch time.
struct Hold {
    bool active = false;
    double until = 0;
    bool in_force(double now) const { return active && (until == 0 || now < until); }
};

// What the watcher remembers between ticks.
struct Clock {
    double last_busy = 0;  // epoch seconds
    std::string busy_by;   // the signal that last saw activity
    double warned_for = 0; // the stop time a warning went out for
};

enum class Action { none, warn, stop };

struct Verdict {
    Action action = Action::none;
    double stops_at = 0;    // 0: no stop ahead (idle off and no deadline)
    bool idle_stop = false; // stops_at is the idle clock's (else the deadline's)
    bool busy = false;      // some signal (or a hold) is active now
    double idle_for = 0;    // seconds since the last activity
    std::string why;        // the stop's reason, or the warning's text
};

// Advances `clock` with the readings at `now` and says what to do.
Verdict decide(const Policy &policy, Clock &clock, const std::vector<Reading> &readings,
               const Hold &hold, double now);

// "idle 60m: no jupyter, ssh, cpu or network activity (gpu: absent)".
std::string idle_reason(long idle_seconds, const std::vector<Reading> &readings);

} // namespace berth::idle
