#include "agent/signals.hpp"

#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/net.hpp"
#include "util/strings.hpp"
#include "util/websocket.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace berth::idle {

namespace stdfs = std::filesystem;

namespace {

std::string ago(double now, double t) {
    if (t <= 0) return "never";
    long s = std::lround(std::max(0.0, now - t));
    return (s < 1 ? std::string("0s") : format_duration(s)) + " ago";
}

Reading make(const char *name, Level l, std::string value, double last = 0) {
    return Reading{name, l, last, std::move(value)};
}

bool all_digits(const std::string &s) {
    return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

} // namespace

std::optional<double> parse_iso_time(const std::string &text) {
    int y, mo, d, h, mi;
    double sec;
    char tail[16] = {};
    if (text.size() < 19 || text.size() > 40) return std::nullopt;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf%15s", &y, &mo, &d, &h, &mi, &sec, tail) <
        6)
        return std::nullopt;
    std::string z = tail;
    if (!(z.empty() || z == "Z" || z == "+00:00")) return std::nullopt;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec < 0 || sec >= 61)
        return std::nullopt;
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = 0;
    return static_cast<double>(::timegm(&tm)) + sec;
}

Result<JupyterActivity> parse_jupyter_list(const std::string &body) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_array()) return fail(ErrorKind::malformed, "Jupyter answered something not a list");
    JupyterActivity a;
    for (const auto &k : j) {
        if (!k.is_object()) return fail(ErrorKind::malformed, "Jupyter listed a non-object");
        ++a.items;
        KernelSeen seen;
        if (k.contains("execution_state") && k["execution_state"].is_string()) {
            seen.state = k["execution_state"];
            if (seen.state == "busy" || seen.state == "starting") ++a.executing;
        }
        if (k.contains("last_activity") && k["last_activity"].is_string())
            if (auto t = parse_iso_time(k["last_activity"])) {
                seen.last = *t;
                a.last_active = std::max(a.last_active, *t);
            }
        // An id goes into a URL path: a UUID's characters only.
        if (k.contains("id") && k["id"].is_string()) {
            std::string id = k["id"];
            if (!id.empty() && id.size() <= 64 &&
                id.find_first_not_of("0123456789abcdefABCDEF-") == std::string::npos) {
                seen.id = id;
                a.kernels.push_back(std::move(seen));
            }
        }
    }
    return a;
}

KernelJudge::Verdict KernelJudge::judge(const std::vector<KernelSeen> &kernels, double now,
                                        int port, const std::string &token) {
    constexpr double slack = 5; // Jupyter records our asking's messages a moment after
    Verdict v;
    std::set<std::string> listed;
    for (const auto &k : kernels) {
        listed.insert(k.id);
        Memory &m = m_seen[k.id];
        double last = k.last <= m.ours_until ? m.real_last : k.last;
        // "busy" is believed. "starting" is asked too: notebook 6 leaves a kernel that no
        // frontend ever connected to "starting" for good (it missed the kernel's first status).
        bool said_busy = k.state == "busy";
        if (said_busy) {
            ++v.executing;
        } else if (m.open || k.last > m.ours_until) {
            bool was_open = m.open;
            auto a = m_probe.ask(port, token, k.id, std::chrono::milliseconds(was_open ? 0 : 2000));
            if (a == ShellProbe::Answer::blocked) {
                m.open = true;
                ++v.executing;
                ++v.found;
            } else {
                // Answered: a question left open was answered when its cell ended, about now.
                // Failed: Jupyter's word stands. Either way what we just did is not activity.
                m.real_last = a == ShellProbe::Answer::free && was_open ? now : last;
                m.ours_until = now + slack;
                m.open = false;
                last = m.real_last;
            }
        }
        v.last_active = std::max(v.last_active, last);
    }
    for (auto it = m_seen.begin(); it != m_seen.end();) {
        if (listed.count(it->first)) {
            ++it;
        } else {
            m_probe.forget(it->first);
            it = m_seen.erase(it);
        }
    }
    return v;
}

namespace {

// Asks over Jupyter's websocket; keeps the connection of an unanswered question.
class WebSocketShellProbe : public ShellProbe {
public:
    Answer ask(int port, const std::string &token, const std::string &id,
               std::chrono::milliseconds wait) override {
        auto it = m_open.find(id);
        if (it == m_open.end()) {
            auto ws = net::WebSocket::open("127.0.0.1", port, "/api/kernels/" + id + "/channels",
                                           {"Authorization: token " + token},
                                           std::chrono::milliseconds(3000));
            if (!ws) return Answer::failed;
            std::string msg_id = random_hex(16);
            nlohmann::json q = {{"header",
                                 {{"msg_id", msg_id},
                                  {"username", "berth"},
                                  {"session", random_hex(16)},
                                  {"msg_type", "kernel_info_request"},
                                  {"version", "5.3"}}},
                                {"parent_header", nlohmann::json::object()},
                                {"metadata", nlohmann::json::object()},
                                {"content", nlohmann::json::object()},
                                {"channel", "shell"}};
            if (!ws->send_text(q.dump(), std::chrono::milliseconds(3000))) return Answer::failed;
            it = m_open.emplace(id, Question{std::move(*ws), msg_id}).first;
        }
        auto deadline = std::chrono::steady_clock::now() + wait;
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            auto got = it->second.ws.receive(std::max(left, std::chrono::milliseconds(0)));
            if (!got) {
                m_open.erase(it);
                return Answer::failed;
            }
            for (const auto &text : *got) {
                auto j = nlohmann::json::parse(text, nullptr, false);
                if (!j.is_object() || !j["parent_header"].is_object()) continue;
                const auto &ph = j["parent_header"];
                if (ph.contains("msg_id") && ph["msg_id"] == it->second.msg_id &&
                    j.value("msg_type", std::string()) == "kernel_info_reply") {
                    m_open.erase(it);
                    return Answer::free;
                }
            }
            if (left.count() <= 0) return Answer::blocked;
        }
    }
    void forget(const std::string &id) override { m_open.erase(id); }

private:
    struct Question {
        net::WebSocket ws;
        std::string msg_id;
    };
    std::map<std::string, Question> m_open;
};

} // namespace

std::unique_ptr<ShellProbe> websocket_shell_probe() {
    return std::make_unique<WebSocketShellProbe>();
}

Result<std::map<std::string, unsigned long long>> parse_net_dev(const std::string &text) {
    std::map<std::string, unsigned long long> out;
    for (const auto &line : str::split(text, '\n')) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue; // the two header lines
        std::string name = str::trim(line.substr(0, colon));
        unsigned long long f[16] = {};
        int n = std::sscanf(line.c_str() + colon + 1,
                            "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
                            "%llu %llu %llu",
                            &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9],
                            &f[10], &f[11], &f[12], &f[13], &f[14], &f[15]);
        if (n < 9 || name.empty())
            return fail(ErrorKind::malformed, "unexpected line in /proc/net/dev");
        out[name] = f[0] + f[8]; // receive bytes + transmit bytes
    }
    if (out.empty()) return fail(ErrorKind::malformed, "no interfaces in /proc/net/dev");
    return out;
}

std::optional<std::pair<unsigned long long, unsigned long long>>
parse_proc_stat(const std::string &text) {
    auto close = text.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    auto fields = str::split(str::trim(text.substr(close + 1)), ' ');
    // fields[0] is field 3 (state): utime is field 14, starttime field 22.
    if (fields.size() < 20) return std::nullopt;
    try {
        unsigned long long t = 0;
        for (int i : {11, 12, 13, 14})
            t += std::stoull(fields[static_cast<std::size_t>(i)]);
        return std::make_pair(t, std::stoull(fields[19]));
    } catch (...) {
        return std::nullopt;
    }
}

namespace {

class JupyterReader : public SignalReader {
public:
    JupyterReader(stdfs::path f, std::unique_ptr<ShellProbe> probe)
        : m_file(std::move(f)), m_probe(probe ? std::move(probe) : websocket_shell_probe()),
          m_judge(*m_probe) {}
    Reading read(double now) override {
        auto text = fs::read_file(m_file);
        if (!text) return make("jupyter", Level::absent, "no Jupyter on this machine");
        auto j = nlohmann::json::parse(*text, nullptr, false);
        int port = j.is_object() && j["port"].is_number_integer() ? j["port"].get<int>() : 0;
        std::string token =
            j.is_object() && j["token"].is_string() ? j["token"].get<std::string>() : "";
        if (port <= 0 || port > 65535 || token.find_first_of("\r\n ") != std::string::npos)
            return make("jupyter", Level::unreadable, "bad " + m_file.string());
        std::vector<std::string> auth = {"Authorization: token " + token};
        auto k =
            net::http_get("127.0.0.1", port, "/api/kernels", auth, std::chrono::milliseconds(5000));
        if (!k)
            return make("jupyter", Level::unreadable,
                        "no answer on port " + std::to_string(port) + " (counts as busy)");
        if (k->status != 200)
            return make("jupyter", Level::unreadable,
                        "HTTP " + std::to_string(k->status) +
                            " from /api/kernels (counts as busy)");
        auto kernels = parse_jupyter_list(k->body);
        if (!kernels) return make("jupyter", Level::unreadable, kernels.error().what);
        JupyterActivity terms;
        auto t = net::http_get("127.0.0.1", port, "/api/terminals", auth,
                               std::chrono::milliseconds(5000));
        if (t && t->status == 200) {
            auto p = parse_jupyter_list(t->body);
            if (!p) return make("jupyter", Level::unreadable, p.error().what);
            terms = *p;
        } else if (!t || t->status != 404) { // 404: terminals disabled
            return make("jupyter", Level::unreadable, "/api/terminals does not answer");
        }
        auto judged = m_judge.judge(kernels->kernels, now, port, token);
        // Kernels without a usable id (never from Jupyter itself) count by Jupyter's word.
        int unjudged = kernels->items - static_cast<int>(kernels->kernels.size());
        int executing = judged.executing;
        double klast = judged.last_active;
        if (unjudged > 0) {
            int said = 0;
            for (const auto &k : kernels->kernels)
                if (k.state == "busy" || k.state == "starting") ++said;
            executing += std::max(0, kernels->executing - said);
            klast = std::max(klast, kernels->last_active);
        }
        double last = std::max(klast, terms.last_active);
        std::string v =
            std::to_string(kernels->items) + " kernel" + (kernels->items == 1 ? "" : "s");
        if (executing) {
            v += " (" + std::to_string(executing) + " executing";
            if (judged.found) v += ", " + std::to_string(judged.found) + " that Jupyter calls idle";
            v += ")";
        }
        v += ", " + std::to_string(terms.items) + " terminal" + (terms.items == 1 ? "" : "s");
        v += "; last activity " + ago(now, last);
        return make("jupyter", executing ? Level::busy : Level::quiet, v, last);
    }

private:
    stdfs::path m_file;
    std::unique_ptr<ShellProbe> m_probe;
    KernelJudge m_judge;
};

// Whether process dir `pd` is this machine's where several share a host: its environment
// carries `marker` ("BERTH_AGENT_DIR=..."; Jupyter, its kernels and a node sshd's sessions
// have it). An empty marker: the whole host is the machine.
bool ours(const stdfs::path &pd, const std::string &marker) {
    if (marker.empty()) return true;
    auto env = fs::read_file(pd / "environ");
    if (!env) return false;
    std::string m = marker + '\0';
    return env->compare(0, m.size(), m) == 0 || env->find('\0' + m) != std::string::npos;
}

class PtyReader : public SignalReader {
public:
    PtyReader(stdfs::path proc, std::string marker)
        : m_proc(std::move(proc)), m_marker(std::move(marker)) {}
    Reading read(double now) override {
        std::set<std::string> ptys;
        std::error_code ec;
        stdfs::directory_iterator it(m_proc, ec);
        if (ec) return make("ssh", Level::unreadable, "cannot list " + m_proc.string());
        for (const auto &e : it) {
            auto pid = e.path().filename().string();
            if (!all_digits(pid) || !ours(e.path(), m_marker)) continue;
            for (const char *fd : {"0", "1", "2"}) {
                std::error_code e2;
                auto target = stdfs::read_symlink(e.path() / "fd" / fd, e2);
                if (e2) continue;
                auto s = target.string();
                if (s.rfind("/dev/pts/", 0) == 0 && all_digits(s.substr(9))) ptys.insert(s);
            }
        }
        if (ptys.empty()) return make("ssh", Level::quiet, "no terminal open");
        double last = 0;
        for (const auto &p : ptys) {
            struct stat st {};
            if (::stat(p.c_str(), &st) != 0) continue;
            last = std::max(last, static_cast<double>(st.st_atim.tv_sec));
        }
        return make("ssh", Level::quiet,
                    std::to_string(ptys.size()) + " terminal" + (ptys.size() == 1 ? "" : "s") +
                        ", last input " + ago(now, last),
                    last);
    }

private:
    stdfs::path m_proc;
    std::string m_marker;
};

class CpuReader : public SignalReader {
public:
    CpuReader(double threshold, stdfs::path proc, std::string marker)
        : m_threshold(threshold), m_proc(std::move(proc)), m_marker(std::move(marker)) {}
    Reading read(double now) override {
        std::map<long, std::pair<unsigned long long, unsigned long long>> cur; // pid: ticks, start
        std::error_code ec;
        stdfs::directory_iterator it(m_proc, ec);
        if (ec) return make("cpu", Level::unreadable, "cannot list " + m_proc.string());
        long self = ::getpid();
        for (const auto &e : it) {
            auto name = e.path().filename().string();
            if (!all_digits(name) || name.size() > 9) continue;
            long pid = std::stol(name);
            if (pid == self || !ours(e.path(), m_marker)) continue;
            auto text = fs::read_file(e.path() / "stat");
            if (!text) continue; // exited meanwhile
            if (auto p = parse_proc_stat(*text)) cur[pid] = *p;
        }
        if (cur.empty()) return make("cpu", Level::unreadable, "no processes readable");
        double dt = now - m_last_time;
        bool first = m_last_time == 0;
        unsigned long long ticks = 0;
        for (const auto &[pid, v] : cur) {
            auto old = m_last.find(pid);
            if (old != m_last.end() && old->second.second == v.second)
                ticks += v.first > old->second.first ? v.first - old->second.first : 0;
            else if (!first)
                ticks += v.first; // started since the last tick
        }
        m_last = std::move(cur);
        m_last_time = now;
        if (first || dt <= 0) return make("cpu", Level::quiet, "measuring");
        static const double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
        double pct = static_cast<double>(ticks) / hz / dt * 100.0;
        char buf[96];
        std::snprintf(buf, sizeof buf, "%.1f%% of a core (busy above %.3g%%)", pct, m_threshold);
        return make("cpu", pct >= m_threshold ? Level::busy : Level::quiet, buf);
    }

private:
    double m_threshold;
    stdfs::path m_proc;
    std::string m_marker;
    std::map<long, std::pair<unsigned long long, unsigned long long>> m_last;
    double m_last_time = 0;
};

class NetworkReader : public SignalReader {
public:
    NetworkReader(double threshold, stdfs::path f) : m_threshold(threshold), m_file(std::move(f)) {}
    Reading read(double now) override {
        auto text = fs::read_file(m_file);
        if (!text) return make("network", Level::unreadable, "cannot read " + m_file.string());
        auto m = parse_net_dev(*text);
        if (!m) return make("network", Level::unreadable, m.error().what);
        unsigned long long total = 0;
        for (const auto &[name, bytes] : *m)
            if (name != "lo") total += bytes;
        bool first = m_last_time == 0;
        double dt = now - m_last_time;
        unsigned long long delta = total >= m_last ? total - m_last : 0;
        m_last = total;
        m_last_time = now;
        if (first || dt <= 0) return make("network", Level::quiet, "measuring");
        double kbps = static_cast<double>(delta) / 1000.0 / dt;
        char buf[96];
        std::snprintf(buf, sizeof buf, "%.1f kB/s (busy above %.3g kB/s)", kbps, m_threshold);
        return make("network", kbps >= m_threshold ? Level::busy : Level::quiet, buf);
    }

private:
    double m_threshold;
    stdfs::path m_file;
    unsigned long long m_last = 0;
    double m_last_time = 0;
};

class GpuReader : public SignalReader {
public:
    GpuReader(double threshold, std::unique_ptr<GpuProbe> p)
        : m_threshold(threshold), m_probe(std::move(p)) {}
    Reading read(double) override {
        auto u = m_probe->utilisation();
        if (!u) return make("gpu", Level::unreadable, u.error().what + " (counts as busy)");
        if (!*u) return make("gpu", Level::absent, "no GPU interface (NVML, nvidia-smi)");
        if ((*u)->empty()) return make("gpu", Level::absent, "no GPU");
        double top = *std::max_element((*u)->begin(), (*u)->end());
        char buf[96];
        std::snprintf(buf, sizeof buf, "%zu GPU%s, busiest %.0f%% (busy above %.3g%%)",
                      (*u)->size(), (*u)->size() == 1 ? "" : "s", top, m_threshold);
        return make("gpu", top >= m_threshold ? Level::busy : Level::quiet, buf);
    }

private:
    double m_threshold;
    std::unique_ptr<GpuProbe> m_probe;
};

} // namespace

std::unique_ptr<SignalReader> jupyter_reader(stdfs::path f, std::unique_ptr<ShellProbe> probe) {
    return std::make_unique<JupyterReader>(std::move(f), std::move(probe));
}
std::unique_ptr<SignalReader> pty_reader(stdfs::path proc, std::string marker) {
    return std::make_unique<PtyReader>(std::move(proc), std::move(marker));
}
std::unique_ptr<SignalReader> cpu_reader(double t, stdfs::path proc, std::string marker) {
    return std::make_unique<CpuReader>(t, std::move(proc), std::move(marker));
}
std::unique_ptr<SignalReader> network_reader(double t, stdfs::path f) {
    return std::make_unique<NetworkReader>(t, std::move(f));
}
std::unique_ptr<SignalReader> gpu_reader(double t, std::unique_ptr<GpuProbe> p) {
    return std::make_unique<GpuReader>(t, std::move(p));
}

} // namespace berth::idle
