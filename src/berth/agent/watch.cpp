#include "agent/watch.hpp"

#include "core/paths.hpp"

#include "util/fs.hpp"
#include "util/strings.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fcntl.h>
#include <set>
#include <thread>
#include <unistd.h>

namespace berth::idle {

namespace stdfs = std::filesystem;

namespace {

void log_line(const std::string &s) {
    std::time_t t = std::time(nullptr);
    char ts[32];
    std::strftime(ts, sizeof ts, "%F %T", std::localtime(&t));
    std::fprintf(stderr, "%s watch: %s\n", ts, s.c_str());
    std::fflush(stderr);
}

double num(const nlohmann::json &j, const char *k, double dflt) {
    if (!j.contains(k)) return dflt;
    if (!j[k].is_number()) return std::nan("");
    double v = j[k].get<double>();
    return std::isfinite(v) ? v : std::nan("");
}

double wall_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

} // namespace

WatchFiles machine_files() {
    return WatchFiles{paths::agent_dir()};
}

Result<Setting> read_setting(const WatchFiles &f) {
    Setting s;
    auto text = fs::read_file(f.config());
    if (!text) return s;
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_object())
        return fail(f.config().string() + " is damaged", "set it again with `berth idle`");
    double idle = num(j, "idle_seconds", 0), dl = num(j, "deadline", 0);
    s.thresholds.cpu_percent = num(j, "cpu_percent", s.thresholds.cpu_percent);
    s.thresholds.network_kbps = num(j, "network_kbps", s.thresholds.network_kbps);
    s.thresholds.gpu_percent = num(j, "gpu_percent", s.thresholds.gpu_percent);
    for (double v :
         {idle, dl, s.thresholds.cpu_percent, s.thresholds.network_kbps, s.thresholds.gpu_percent})
        if (std::isnan(v) || v < 0)
            return fail(f.config().string() + " holds a bad value",
                        "set it again with `berth idle`");
    if (idle > 366.0 * 86400) return fail(f.config().string() + ": idle_seconds too large");
    s.policy.idle_seconds = std::lround(idle);
    s.policy.deadline = dl;
    return s;
}

Result<> write_setting(const WatchFiles &f, const Setting &s) {
    BERTH_TRY(fs::make_dirs(f.dir, 0700));
    nlohmann::json j{{"idle_seconds", s.policy.idle_seconds},
                     {"deadline", s.policy.deadline},
                     {"cpu_percent", s.thresholds.cpu_percent},
                     {"network_kbps", s.thresholds.network_kbps},
                     {"gpu_percent", s.thresholds.gpu_percent}};
    return fs::write_file_atomic(f.config(), j.dump() + "\n", 0600);
}

Hold read_hold(const WatchFiles &f) {
    Hold h;
    auto text = fs::read_file(f.hold());
    if (!text) return h;
    auto j = nlohmann::json::parse(*text, nullptr, false);
    // A hold file that cannot be read holds (a damaged hold never lets a machine stop early).
    h.active = true;
    if (j.is_object() && j.contains("until") && j["until"].is_number()) {
        double u = j["until"].get<double>();
        h.until = std::isfinite(u) && u >= 0 ? u : 0;
    }
    return h;
}

Result<> write_hold(const WatchFiles &f, const Hold &h) {
    BERTH_TRY(fs::make_dirs(f.dir, 0700));
    nlohmann::json j{{"until", h.until}, {"set_at", static_cast<long long>(std::time(nullptr))}};
    return fs::write_file_atomic(f.hold(), j.dump() + "\n", 0600);
}

Result<> release_hold(const WatchFiles &f) {
    if (::unlink(f.hold().c_str()) != 0 && errno != ENOENT)
        return fail_errno(f.hold().string(), errno);
    return {};
}

Watcher::Watcher(WatchFiles files, std::vector<std::unique_ptr<SignalReader>> readers, StopFn stop,
                 WarnFn warn, SaveFn save)
    : m_files(std::move(files)), m_readers(std::move(readers)), m_stop(std::move(stop)),
      m_warn(std::move(warn)), m_save(std::move(save)) {}

bool Watcher::tick(double now) {
    auto setting = read_setting(m_files);
    std::vector<Reading> readings;
    for (auto &r : m_readers)
        readings.push_back(r->read(now));
    if (!setting) {
        // A damaged setting is shown and counts as activity: never a stop on a guess.
        readings.push_back(Reading{"setting", Level::unreadable, 0, setting.error().what});
        setting = Setting{};
    }
    // A new idle time is the user's doing: the clock starts again from it (no surprise stop
    // of a machine that was quiet under the old setting).
    if (m_seen_idle >= 0 && setting->policy.idle_seconds != m_seen_idle) {
        m_clock.last_busy = now;
        m_clock.busy_by = "setting";
    }
    m_seen_idle = setting->policy.idle_seconds;
    Hold hold = read_hold(m_files);
    Verdict v = decide(setting->policy, m_clock, readings, hold, now);
    nlohmann::json sig = nlohmann::json::array();
    for (const auto &r : readings)
        sig.push_back({{"name", r.signal},
                       {"level", level_name(r.level)},
                       {"value", r.value},
                       {"last_active", r.last_active}});
    m_status = {{"schema", "berth.idle/1"},
                {"updated", now},
                {"idle_seconds", setting->policy.idle_seconds},
                {"deadline", setting->policy.deadline},
                {"stops_at", v.stops_at},
                {"stop_kind", v.stops_at == 0 ? ""
                              : v.idle_stop   ? "idle"
                                              : "max-hours"},
                {"idle_for", v.idle_for},
                {"last_busy", m_clock.last_busy},
                {"busy_by", m_clock.busy_by},
                {"busy", v.busy},
                {"hold", {{"active", hold.in_force(now)}, {"until", hold.until}}},
                {"signals", sig},
                {"warning", v.action == Action::warn ? v.why : ""},
                {"stopping", v.action == Action::stop ? v.why : ""},
                {"error", ""}};
    if (v.action == Action::warn) {
        log_line(v.why);
        if (m_warn) m_warn(v.why);
    }
    bool asked = false;
    bool hard = !v.idle_stop;
    if (v.action == Action::stop && now >= m_next_stop && (hard || now >= m_next_save)) {
        Result<> saved;
        if (m_save) saved = m_save();
        if (!saved && !hard) {
            // The work could not be kept: the machine stays up, says why, and tries again.
            m_error = "save before stop failed: " + saved.error().what + "; retrying in 60 s";
            m_next_save = now + 60;
        } else {
            log_line("stopping: " + v.why);
            std::time_t t = static_cast<std::time_t>(now);
            char ts[32];
            std::strftime(ts, sizeof ts, "%F %T", std::localtime(&t));
            auto old = fs::read_file(m_files.stops()).value_or("");
            if (old.size() > (1u << 20)) old.erase(0, old.size() / 2);
            (void)fs::write_file_atomic(m_files.stops(), old + ts + " " + v.why + "\n", 0600);
            auto r = m_stop ? m_stop(v.why) : Result<>(fail("no way to stop this machine"));
            if (r) {
                asked = true;
                m_error.clear();
                m_next_stop = now + 300; // asked again if the machine is still here then
            } else {
                m_error = "the stop failed: " + r.error().what + "; retrying";
                m_next_stop = now + 30;
            }
        }
    }
    m_status["error"] = m_error;
    if (!m_error.empty()) log_line(m_error);
    (void)fs::make_dirs(m_files.dir, 0700);
    (void)fs::write_file_atomic(m_files.status(), m_status.dump() + "\n", 0600);
    return asked;
}

std::vector<std::unique_ptr<SignalReader>> machine_readers(const WatchFiles &f,
                                                           const Thresholds &t) {
    std::vector<std::unique_ptr<SignalReader>> out;
    out.push_back(jupyter_reader(f.jupyter()));
    // A host shared with other machines (BERTH_AGENT_DIR set): only this machine's processes.
    const char *shared = std::getenv("BERTH_AGENT_DIR");
    std::string marker = shared && *shared ? std::string("BERTH_AGENT_DIR=") + shared : "";
    out.push_back(pty_reader("/proc", marker));
    out.push_back(gpu_reader(t.gpu_percent, system_gpu_probe()));
    out.push_back(cpu_reader(t.cpu_percent, "/proc", marker));
    out.push_back(network_reader(t.network_kbps));
    return out;
}

void warn_terminals(const std::string &message) {
    std::set<std::string> ptys;
    std::error_code ec;
    for (const auto &e : stdfs::directory_iterator("/proc", ec)) {
        for (const char *fd : {"0", "1", "2"}) {
            std::error_code e2;
            auto s = stdfs::read_symlink(e.path() / "fd" / fd, e2).string();
            if (!e2 && s.rfind("/dev/pts/", 0) == 0) ptys.insert(s);
        }
    }
    std::string text = "\r\n*** " + message + " ***\r\n";
    for (const auto &p : ptys) {
        int fd = ::open(p.c_str(), O_WRONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        (void)!::write(fd, text.data(), text.size());
        ::close(fd);
    }
}

int run_watch(const WatchFiles &files, const StopFn &stop, double tick_seconds) {
    auto setting = read_setting(files);
    Thresholds t = setting ? setting->thresholds : Thresholds{};
    Watcher w(files, machine_readers(files, t), stop, warn_terminals);
    log_line("watching this machine (" + files.config().string() + ")");
    for (;;) {
        w.tick(wall_now());
        std::this_thread::sleep_for(
            std::chrono::milliseconds(static_cast<long>(tick_seconds * 1000)));
    }
}

} // namespace berth::idle
