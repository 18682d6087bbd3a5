// The idle signals, read on the machine (see agent/idle.hpp for the rule they feed).
//
// Each reader is one class behind one interface, so the watcher's tests replace any of them
// with a fake, and a reader that fails says "unreadable" (which counts as busy), never "idle".
//   jupyter  Jupyter's REST API with its token: a kernel executing is busy (a kernel Jupyter
//            calls idle is asked on its shell channel, see ShellProbe); otherwise the latest
//            `last_activity` of kernels and terminals (Jupyter's own polling and ours do not
//            move them; /api/status's server-wide clock is not used for that reason).
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

#include <chrono>
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

// Asks a kernel whether its shell is free. Jupyter's execution_state is not the truth: a
// kernel that handles any control-channel message (a frontend's kernel_info on connecting, an
// interrupt, the debugger) is reported "idle" while its cell runs on (notebook 6 with
// ipykernel 6). So a kernel reported idle is asked a kernel_info_request on its shell channel;
// a shell that does not answer is executing.
class ShellProbe {
public:
    enum class Answer { free, blocked, failed };
    virtual ~ShellProbe() = default;
    // Asks kernel `id` of the Jupyter at 127.0.0.1:port, or looks for the answer to the
    // question already asked: free once it answered, blocked while it has not (the question
    // stays open), failed when it cannot be asked.
    virtual Answer ask(int port, const std::string &token, const std::string &id,
                       std::chrono::milliseconds wait) = 0;
    virtual void forget(const std::string &id) = 0; // drops an open question
};
// Over Jupyter's websocket (/api/kernels/ID/channels).
std::unique_ptr<ShellProbe> websocket_shell_probe();

struct KernelSeen {
    std::string id, state; // state: Jupyter's execution_state
    double last = 0;       // its last_activity, epoch seconds
};

// What the kernels really do, from Jupyter's list and the shell probe. It remembers between
// ticks which activity was its own asking (connecting and asking make iopub messages that move
// last_activity: they must not keep the machine up), and asks a kernel again only after
// activity that was not its own.
class KernelJudge {
public:
    explicit KernelJudge(ShellProbe &probe) : m_probe(probe) {}
    struct Verdict {
        int executing = 0; // by Jupyter's word or found by asking
        int found = 0;     // of them, found executing by asking (Jupyter said idle)
        double last_active = 0;
    };
    Verdict judge(const std::vector<KernelSeen> &kernels, double now, int port,
                  const std::string &token);

private:
    struct Memory {
        double ours_until = -1; // activity up to here was our asking
        double real_last = 0;   // the kernel's own latest activity before it
        bool open = false;      // a question is open (the shell was blocked)
    };
    ShellProbe &m_probe;
    std::map<std::string, Memory> m_seen;
};

// Where Jupyter listens and its token: ~/.berth/jupyter.json ({"port":..,"token":..}).
std::unique_ptr<SignalReader> jupyter_reader(std::filesystem::path jupyter_json,
                                             std::unique_ptr<ShellProbe> probe = nullptr);
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
    std::vector<KernelSeen> kernels; // those with a valid id
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
