// The machine's watcher: `berth agent watch`, one per machine, started at boot (by the local
// machine's PID 1, which restarts it if it dies; by the bootstrap on machines reached over
// SSH). Every tick it reads the signals, applies the rule (agent/idle.hpp), writes what it
// sees to ~/.berth/idle-status.json (what `berth status` and `berth ls` show), warns open
// terminals ahead of a stop, and stops the machine through `stop` with the reason, which it
// also appends to ~/.berth/stops.log. No client is involved at any point.
//
// Files, all in the machine's ~/.berth (0600):
//   idle.json         the setting: {"idle_seconds", "deadline", "cpu_percent", "network_kbps",
//                     "gpu_percent"}; `berth idle NAME D` rewrites it, the watcher rereads it
//   hold.json         {"until": epoch | 0 (until released)}; `berth hold`
//   idle-status.json  the watcher's view now (schema berth.idle/1)
//   stops.log         one line per stop: when and why
#pragma once

#include "agent/idle.hpp"
#include "agent/signals.hpp"
#include "util/result.hpp"

#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace berth::idle {

struct WatchFiles {
    std::filesystem::path dir; // the machine's ~/.berth
    std::filesystem::path config() const { return dir / "idle.json"; }
    std::filesystem::path hold() const { return dir / "hold.json"; }
    std::filesystem::path status() const { return dir / "idle-status.json"; }
    std::filesystem::path stops() const { return dir / "stops.log"; }
    std::filesystem::path jupyter() const { return dir / "jupyter.json"; }
};
// $HOME/.berth of the user the agent runs as.
WatchFiles machine_files();

struct Setting {
    Policy policy;
    Thresholds thresholds;
};
// A missing file is the default (idle off, no deadline); a damaged one an error.
Result<Setting> read_setting(const WatchFiles &f);
Result<> write_setting(const WatchFiles &f, const Setting &s);
Hold read_hold(const WatchFiles &f);
Result<> write_hold(const WatchFiles &f, const Hold &h);
Result<> release_hold(const WatchFiles &f);

using StopFn = std::function<Result<>(const std::string &reason)>;
using SaveFn = std::function<Result<>()>;
using WarnFn = std::function<void(const std::string &message)>;

class Watcher {
public:
    Watcher(WatchFiles files, std::vector<std::unique_ptr<SignalReader>> readers, StopFn stop,
            WarnFn warn, SaveFn save_before_stop = {});
    // One look at the machine at `now`; true once the stop was asked for.
    bool tick(double now);
    const nlohmann::json &last_status() const { return m_status; }

private:
    WatchFiles m_files;
    std::vector<std::unique_ptr<SignalReader>> m_readers;
    StopFn m_stop;
    WarnFn m_warn;
    SaveFn m_save;
    Clock m_clock;
    nlohmann::json m_status;
    double m_next_save = 0, m_next_stop = 0;
    long m_seen_idle = -1;
    std::string m_error;
};

// The readers of this machine, with the setting's thresholds.
std::vector<std::unique_ptr<SignalReader>> machine_readers(const WatchFiles &f,
                                                           const Thresholds &t);
// Writes `message` to every pseudo-terminal a process here holds open (as wall does).
void warn_terminals(const std::string &message);

// The watcher's loop: ticks every `tick_seconds` until the stop was asked for and the
// machine goes away (it keeps asking, with backoff, if it does not). Logs to stderr.
int run_watch(const WatchFiles &files, const StopFn &stop, double tick_seconds = 10);

} // namespace berth::idle
