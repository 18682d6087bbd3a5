// The idle signals, read on the machine (see agent/idle.hpp for the rule they feed).
//
// Each reader is one class behind one interface, so the watcher's tests replace any of them
// with a fake, and a reader that fails says "unreadable" (which counts as busy), never "idle".
//   jupyter  Jupyter's REST API with its token: a kernel executing is busy; otherwise the
//            latest `last_activity` of kernels and terminals (Jupyter's own polling and ours
//            do not move them; /api/status's server-wide clock is not used for that reason).
//   ssh      input on the machine's pseudo-terminals: the access time of each /dev/pts/N some
//            process here holds open (the kernel updates it when a program reads typed input;
//            an idle PTY, like a container's own, stays old). berth's tunnel and commands run
//            without a PTY and never count.
//   gpu      utilisation of the busiest GPU, from NVML (`dlopen("libnvidia-ml.so.1")`) in the
//            dynamic build, `nvidia-smi` in the static agent; absent without either.
//   cpu      CPU time of the machine's processes (this watcher excluded) over the last tick.
//   network  bytes in and out on every interface but loopback over the last tick.
#pragma once

#include "agent/idle.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace berth::idle {

class SignalReader {
public:
    virtual ~SignalReader() = default;
    virtual Reading read(double now) = 0;
};

// Where Jupyter listens and its token: ~/.berth/jupyter.json ({"port":..,"token":..}).
std::unique_ptr<SignalReader> jupyter_reader(std::filesystem::path jupyter_json);
// Pseudo-terminals held by processes under `proc` (default /proc). Where several berth
// machines share a host, `marker` ("BERTH_AGENT_DIR=DIR") keeps to this machine's processes:
// those whose environment has it (Jupyter, its kernels, a Slurm node sshd's sessions).
std::unique_ptr<SignalReader> pty_reader(std::filesystem::path proc = "/proc",
                                         std::string marker = {});
std::unique_ptr<SignalReader>
cpu_reader(double threshold_percent, std::filesystem::path proc = "/proc", std::string marker = {});
std::unique_ptr<SignalReader> network_reader(double threshold_kbps,
                                             std::filesystem::path net_dev = "/proc/net/dev");

// The GPUs' utilisation, percent each; nullopt: no GPU interface on this machine (absent);
// an error: it is there but failed (unreadable).
class GpuProbe {
public:
    virtual ~GpuProbe() = default;
    virtual Result<std::optional<std::vector<double>>> utilisation() = 0;
};
std::unique_ptr<GpuProbe> system_gpu_probe(); // NVML or nvidia-smi (per build)
std::unique_ptr<SignalReader> gpu_reader(double threshold_percent, std::unique_ptr<GpuProbe> p);

// Parsers, apart for tests.
// Jupyter's /api/kernels or /api/terminals answer: the latest last_activity (epoch seconds),
// and how many kernels are executing. Fails on anything but a list of objects.
struct JupyterActivity {
    double last_active = 0;
    int items = 0, executing = 0;
};
Result<JupyterActivity> parse_jupyter_list(const std::string &body);
// "2026-12-02T00:36:05.123456Z" (or +00:00) -> epoch seconds; nullopt when malformed.
std::optional<double> parse_iso_time(const std::string &text);
// /proc/net/dev -> bytes in + out per interface.
Result<std::map<std::string, unsigned long long>> parse_net_dev(const std::string &text);
// /proc/PID/stat -> utime + stime + cutime + cstime in clock ticks, and the start time.
std::optional<std::pair<unsigned long long, unsigned long long>>
parse_proc_stat(const std::string &text);

} // namespace berth::idle
