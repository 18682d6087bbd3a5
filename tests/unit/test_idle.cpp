// Idle stop: the rule with a fake clock, each signal's reader on crafted inputs, each signal
// failing, and the watcher with fake readers and a fake stop.
#include "agent/idle.hpp"
#include "agent/signals.hpp"
#include "agent/watch.hpp"
#include "util/fs.hpp"

#include <arpa/inet.h>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <netinet/in.h>
#include <set>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include <gtest/gtest.h>

using namespace berth;
using namespace berth::idle;
namespace stdfs = std::filesystem;

namespace {

Reading quiet(const char *name, double last = 0) {
    return Reading{name, Level::quiet, last, "quiet"};
}
Reading busy(const char *name) {
    return Reading{name, Level::busy, 0, "busy"};
}

stdfs::path temp_dir() {
    char tmpl[] = "/tmp/berth-idle-XXXXXX";
    return ::mkdtemp(tmpl);
}

} // namespace

TEST(IdleDuration, ParsesWhatUsersWrite) {
    EXPECT_EQ(*parse_duration("45m"), 2700);
    EXPECT_EQ(*parse_duration("2h"), 7200);
    EXPECT_EQ(*parse_duration("1h30m"), 5400);
    EXPECT_EQ(*parse_duration("1.5h"), 5400);
    EXPECT_EQ(*parse_duration("90s"), 90);
    EXPECT_EQ(*parse_duration("1d"), 86400);
    EXPECT_EQ(*parse_duration("off"), 0);
    EXPECT_EQ(*parse_duration("0"), 0);
    for (const char *bad : {"", "5", "m", "-1m", "5x", "1e9h", "h5", "1m-", "0.001s", "400d"}) {
        auto r = parse_duration(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().code, 2) << bad;
        EXPECT_NE(r.error().fix.find("45m"), std::string::npos);
    }
    EXPECT_EQ(format_duration(5400), "1h30m");
    EXPECT_EQ(format_duration(3600), "1h");
    EXPECT_EQ(format_duration(90), "1m30s");
    EXPECT_EQ(format_duration(60), "1m");
    EXPECT_EQ(format_duration(7), "7s");
    EXPECT_EQ(format_duration(0), "off");
}

TEST(IdleRule, QuietMachineStopsAfterTheIdleTimeFromItsLastActivity) {
    Policy p{600, 0, 300};
    Clock c;
    auto v = decide(p, c, {quiet("jupyter", 900), quiet("ssh")}, {}, 1000);
    // The clock starts at the first look (1000); the kernel's activity at 900 is older.
    EXPECT_EQ(v.action, Action::none);
    EXPECT_DOUBLE_EQ(v.stops_at, 1600);
    EXPECT_TRUE(v.idle_stop);
    EXPECT_FALSE(v.busy);
    v = decide(p, c, {quiet("jupyter", 1200), quiet("ssh")}, {}, 1250);
    EXPECT_DOUBLE_EQ(v.stops_at, 1800) << "a kernel's activity at 1200 moves the clock";
    EXPECT_EQ(c.busy_by, "jupyter");
    v = decide(p, c, {quiet("jupyter", 1200), quiet("ssh")}, {}, 1799);
    EXPECT_NE(v.action, Action::stop);
    v = decide(p, c, {quiet("jupyter", 1200), quiet("ssh"), Reading{"gpu", Level::absent, 0, ""}},
               {}, 1800);
    EXPECT_EQ(v.action, Action::stop);
    EXPECT_EQ(v.why, "idle 10m: no jupyter or ssh activity (gpu: absent)");
}

TEST(IdleRule, BusyAndUnreadableSignalsKeepItUpAbsentOnesDoNot) {
    Policy p{60, 0, 300};
    Clock c;
    for (double t = 0; t <= 600; t += 10) {
        auto v = decide(p, c, {busy("cpu"), quiet("ssh")}, {}, 1000 + t);
        ASSERT_NE(v.action, Action::stop);
        EXPECT_TRUE(v.busy);
    }
    Clock c2;
    for (double t = 0; t <= 600; t += 10) {
        auto v =
            decide(p, c2, {Reading{"jupyter", Level::unreadable, 0, "no answer"}}, {}, 1000 + t);
        ASSERT_NE(v.action, Action::stop) << "a signal that cannot be read is never idle";
    }
    Clock c3;
    Verdict v;
    for (double t = 0; t <= 70 && v.action != Action::stop; t += 10)
        v = decide(p, c3, {Reading{"gpu", Level::absent, 0, ""}}, {}, 1000 + t);
    EXPECT_EQ(v.action, Action::stop) << "an absent GPU counts for nothing";
}

TEST(IdleRule, ActivityInTheFutureIsClampedToNow) {
    Policy p{60, 0, 300};
    Clock c;
    auto v = decide(p, c, {quiet("jupyter", 1e12)}, {}, 1000);
    EXPECT_DOUBLE_EQ(c.last_busy, 1000);
    EXPECT_DOUBLE_EQ(v.stops_at, 1060);
}

TEST(IdleRule, HoldKeepsItUpUntilItEndsAndMaxHoursWinsOverEverything) {
    Policy p{60, 5000, 300};
    Clock c;
    Hold h{true, 2000};
    for (double t = 1000; t < 2000; t += 10)
        ASSERT_NE(decide(p, c, {quiet("ssh")}, h, t).action, Action::stop);
    auto v = decide(p, c, {quiet("ssh")}, h, 2061);
    EXPECT_EQ(v.action, Action::stop) << "60 s after the hold ended";
    Clock c2;
    Hold forever{true, 0};
    v = decide(p, c2, {busy("cpu")}, forever, 4999);
    EXPECT_NE(v.action, Action::stop);
    EXPECT_FALSE(v.idle_stop);
    v = decide(p, c2, {busy("cpu")}, forever, 5000);
    EXPECT_EQ(v.action, Action::stop);
    EXPECT_NE(v.why.find("max-hours"), std::string::npos);
    Hold none;
    EXPECT_FALSE(none.in_force(0));
}

TEST(IdleRule, OffNeverStopsWithoutADeadline) {
    Policy p{0, 0, 300};
    Clock c;
    for (double t = 0; t < 1e6; t += 1000) {
        auto v = decide(p, c, {quiet("ssh")}, {}, 1000 + t);
        ASSERT_EQ(v.action, Action::none);
        ASSERT_EQ(v.stops_at, 0);
    }
}

TEST(IdleRule, WarnsOnceAheadOfEachStopAtMostHalfTheIdleTime) {
    Policy p{3600, 0, 300};
    Clock c;
    int warns = 0;
    double warned_at = 0;
    for (double t = 1000; t < 1000 + 3600; t += 10) {
        auto v = decide(p, c, {quiet("ssh")}, {}, t);
        if (v.action == Action::warn) {
            ++warns;
            warned_at = t;
            EXPECT_NE(v.why.find("stops in 5m"), std::string::npos) << v.why;
        }
    }
    EXPECT_EQ(warns, 1);
    EXPECT_DOUBLE_EQ(warned_at, 1000 + 3600 - 300);
    // Activity moves the stop; the next quiet stretch warns again.
    decide(p, c, {busy("cpu")}, {}, 4590);
    warns = 0;
    for (double t = 4600; t < 4590 + 3600; t += 10)
        warns += decide(p, c, {quiet("ssh")}, {}, t).action == Action::warn;
    EXPECT_EQ(warns, 1);
    // A one-minute idle warns 30 s ahead, not five minutes.
    Policy shortp{60, 0, 300};
    Clock c2;
    double first_warn = 0;
    for (double t = 0; t < 60 && first_warn == 0; t += 1)
        if (decide(shortp, c2, {quiet("ssh")}, {}, 1000 + t).action == Action::warn) first_warn = t;
    EXPECT_DOUBLE_EQ(first_warn, 30);
}

TEST(IdleSignals, Parsers) {
    EXPECT_DOUBLE_EQ(*parse_iso_time("1970-01-01T00:01:00Z"), 60);
    EXPECT_DOUBLE_EQ(*parse_iso_time("2026-12-02T00:36:05.500000Z"), 1796171765.5);
    EXPECT_DOUBLE_EQ(*parse_iso_time("2026-12-02T00:36:05+00:00"), 1796171765);
    for (const char *bad : {"", "yesterday", "2026-13-02T00:00:00Z", "2026-12-02T00:00:00+02:00"})
        EXPECT_FALSE(parse_iso_time(bad)) << bad;

    auto k = parse_jupyter_list(R"([{"id":"a","execution_state":"idle",
        "last_activity":"1970-01-01T00:01:00Z"},{"id":"b","execution_state":"busy",
        "last_activity":"1970-01-01T00:02:00.5Z"},{"id":"c"}])");
    ASSERT_TRUE(k);
    EXPECT_EQ(k->items, 3);
    EXPECT_EQ(k->executing, 1);
    EXPECT_DOUBLE_EQ(k->last_active, 120.5);
    EXPECT_FALSE(parse_jupyter_list(R"({"message":"Forbidden"})"));
    EXPECT_FALSE(parse_jupyter_list(R"([1,2])"));
    EXPECT_FALSE(parse_jupyter_list("<html>"));

    auto n = parse_net_dev("Inter-|   Receive   |  Transmit\n"
                           " face |bytes packets errs drop fifo frame compressed multicast|bytes "
                           "packets errs drop fifo colls carrier compressed\n"
                           "    lo: 1000 10 0 0 0 0 0 0 1000 10 0 0 0 0 0 0\n"
                           "  eth0: 5000 50 0 0 0 0 0 0 7000 70 0 0 0 0 0 0\n");
    ASSERT_TRUE(n);
    EXPECT_EQ(n->at("lo"), 2000u);
    EXPECT_EQ(n->at("eth0"), 12000u);
    EXPECT_FALSE(parse_net_dev("eth0: lots\n"));
    EXPECT_FALSE(parse_net_dev(""));

    // A process named "a) b" must not shift the fields.
    std::string stat = "42 (a) b) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 12345 0 0";
    auto p = parse_proc_stat(stat);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->first, 7u + 3 + 2 + 1);
    EXPECT_EQ(p->second, 12345u);
    EXPECT_FALSE(parse_proc_stat("42 (x) S 1"));
    EXPECT_FALSE(parse_proc_stat("garbage"));
}

TEST(IdleSignals, CpuAndNetworkReadDeltasAndFailAsUnreadable) {
    auto dir = temp_dir();
    auto proc = dir / "proc";
    stdfs::create_directories(proc / "100");
    stdfs::create_directories(proc / "self-not-a-pid");
    auto write_stat = [&](unsigned long long ticks) {
        ASSERT_TRUE(fs::write_file_atomic(proc / "100" / "stat",
                                          "100 (python) S 1 1 1 0 -1 0 0 0 0 0 " +
                                              std::to_string(ticks) + " 0 0 0 20 0 1 0 555 0 0\n"));
    };
    double hz = static_cast<double>(::sysconf(_SC_CLK_TCK));
    auto cpu = cpu_reader(10, proc);
    write_stat(0);
    EXPECT_EQ(cpu->read(1000).value, "measuring");
    write_stat(static_cast<unsigned long long>(hz * 5)); // 5 s of CPU in 10 s: 50%
    auto r = cpu->read(1010);
    EXPECT_EQ(r.level, Level::busy) << r.value;
    write_stat(static_cast<unsigned long long>(hz * 5) + 1); // ~0%
    EXPECT_EQ(cpu->read(1020).level, Level::quiet);
    EXPECT_EQ(cpu_reader(10, dir / "missing")->read(1000).level, Level::unreadable);

    auto net = dir / "net_dev";
    auto write_net = [&](unsigned long long eth) {
        ASSERT_TRUE(fs::write_file_atomic(
            net, "h1\nh2\n lo: 99999999 0 0 0 0 0 0 0 99999999 0 0 0 0 0 0 0\n eth0: " +
                     std::to_string(eth) + " 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"));
    };
    auto nr = network_reader(50, net);
    write_net(0);
    EXPECT_EQ(nr->read(1000).value, "measuring");
    write_net(10'000'000); // 1 MB/s over 10 s
    EXPECT_EQ(nr->read(1010).level, Level::busy);
    write_net(10'000'100);
    EXPECT_EQ(nr->read(1020).level, Level::quiet) << "loopback traffic never counts";
    ASSERT_TRUE(fs::write_file_atomic(net, "garbage"));
    EXPECT_EQ(nr->read(1030).level, Level::unreadable);
    stdfs::remove_all(dir);
}

namespace {

struct FakeGpu : GpuProbe {
    Result<std::optional<std::vector<double>>> answer;
    Result<std::optional<std::vector<double>>> utilisation() override { return answer; }
};

std::unique_ptr<SignalReader> gpu_with(Result<std::optional<std::vector<double>>> a) {
    auto g = std::make_unique<FakeGpu>();
    g->answer = std::move(a);
    return gpu_reader(5, std::move(g));
}

// A loopback HTTP server answering every request with one canned answer.
struct CannedServer {
    int fd = -1, port = 0;
    std::atomic<bool> stop{false};
    std::thread t;
    explicit CannedServer(std::string answer) {
        fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
        port = ntohs(a.sin_port);
        ::listen(fd, 8);
        t = std::thread([this, answer] {
            for (;;) {
                int c = ::accept(fd, nullptr, nullptr);
                if (c < 0 || stop) {
                    if (c >= 0) ::close(c);
                    return;
                }
                char buf[4096];
                (void)!::read(c, buf, sizeof buf);
                (void)!::write(c, answer.data(), answer.size());
                ::close(c);
            }
        });
    }
    ~CannedServer() {
        stop = true;
        ::shutdown(fd, SHUT_RDWR);
        ::close(fd);
        t.join();
    }
};

std::string http(int status, const std::string &body) {
    return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n\r\n" +
           body;
}

} // namespace

TEST(IdleSignals, GpuAbsentFailingBusyQuiet) {
    EXPECT_EQ(gpu_with(std::optional<std::vector<double>>{})->read(0).level, Level::absent);
    EXPECT_EQ(gpu_with(fail("NVML broke"))->read(0).level, Level::unreadable);
    EXPECT_EQ(gpu_with(std::optional<std::vector<double>>({0, 80}))->read(0).level, Level::busy);
    EXPECT_EQ(gpu_with(std::optional<std::vector<double>>({0, 1}))->read(0).level, Level::quiet);
}

TEST(IdleSignals, JupyterAbsentUnreachableRefusedBusyQuiet) {
    auto dir = temp_dir();
    auto file = dir / "jupyter.json";
    EXPECT_EQ(jupyter_reader(file)->read(1000).level, Level::absent);
    auto point = [&](int port) {
        ASSERT_TRUE(
            fs::write_file_atomic(file, nlohmann::json{{"port", port}, {"token", "tok"}}.dump()));
    };
    {
        CannedServer s(http(200, "[]"));
        point(s.port);
    } // closed: nothing listens there now
    auto r = jupyter_reader(file)->read(1000);
    EXPECT_EQ(r.level, Level::unreadable) << "Jupyter stopped counts as busy";
    {
        CannedServer s(http(403, R"({"message":"Forbidden"})"));
        point(s.port);
        EXPECT_EQ(jupyter_reader(file)->read(1000).level, Level::unreadable);
    }
    {
        CannedServer s(
            http(200, R"([{"execution_state":"busy","last_activity":"1970-01-01T00:10:00Z"}])"));
        point(s.port);
        auto b = jupyter_reader(file)->read(1000);
        EXPECT_EQ(b.level, Level::busy) << b.value;
    }
    {
        CannedServer s(
            http(200, R"([{"execution_state":"idle","last_activity":"1970-01-01T00:10:00Z"}])"));
        point(s.port);
        auto q = jupyter_reader(file)->read(1000);
        EXPECT_EQ(q.level, Level::quiet) << q.value;
        EXPECT_DOUBLE_EQ(q.last_active, 600);
    }
    ASSERT_TRUE(fs::write_file_atomic(file, "{\"port\": \"x\"}"));
    EXPECT_EQ(jupyter_reader(file)->read(1000).level, Level::unreadable);
    stdfs::remove_all(dir);
}

namespace {

// A shell probe that answers from a script and counts the questions.
struct FakeProbe : ShellProbe {
    std::map<std::string, Answer> answer;
    std::map<std::string, int> asked;
    std::set<std::string> forgotten;
    Answer ask(int, const std::string &, const std::string &id,
               std::chrono::milliseconds) override {
        ++asked[id];
        return answer.count(id) ? answer[id] : Answer::failed;
    }
    void forget(const std::string &id) override { forgotten.insert(id); }
};

} // namespace

TEST(IdleSignals, AKernelJupyterCallsIdleIsAskedOnItsShell) {
    FakeProbe p;
    KernelJudge j(p);
    // Jupyter says idle, but the shell does not answer: executing (the notebook 6 bug).
    p.answer["k1"] = ShellProbe::Answer::blocked;
    auto v = j.judge({{"k1", "idle", 500}}, 1000, 1, "t");
    EXPECT_EQ(v.executing, 1);
    EXPECT_EQ(v.found, 1);
    // Still unanswered on the next tick; asked again (the open question is looked at).
    v = j.judge({{"k1", "idle", 1001}}, 1030, 1, "t");
    EXPECT_EQ(v.executing, 1);
    EXPECT_EQ(p.asked["k1"], 2);
    // The cell ended: answered. Its end is the kernel's activity, not older.
    p.answer["k1"] = ShellProbe::Answer::free;
    v = j.judge({{"k1", "idle", 1050}}, 1060, 1, "t");
    EXPECT_EQ(v.executing, 0);
    EXPECT_DOUBLE_EQ(v.last_active, 1060);
    // The answer moved last_activity (our own asking): not asked again, not activity.
    v = j.judge({{"k1", "idle", 1061}}, 1090, 1, "t");
    EXPECT_EQ(p.asked["k1"], 3);
    EXPECT_DOUBLE_EQ(v.last_active, 1060);
    // A quiet kernel answers at once and keeps its own activity time; asking is not activity.
    p.answer["k2"] = ShellProbe::Answer::free;
    v = j.judge({{"k2", "idle", 700}}, 1100, 1, "t");
    EXPECT_EQ(v.executing, 0);
    EXPECT_DOUBLE_EQ(v.last_active, 700);
    v = j.judge({{"k2", "idle", 1101}}, 1130, 1, "t");
    EXPECT_DOUBLE_EQ(v.last_active, 700) << "the question's own messages kept it up";
    EXPECT_EQ(p.asked["k2"], 1);
    // New activity of its own (a short cell): asked again, and that activity counts.
    v = j.judge({{"k2", "idle", 1150}}, 1160, 1, "t");
    EXPECT_EQ(p.asked["k2"], 2);
    EXPECT_DOUBLE_EQ(v.last_active, 1150);
    // Jupyter's busy is believed without asking.
    v = j.judge({{"k3", "busy", 1170}}, 1170, 1, "t");
    EXPECT_EQ(v.executing, 1);
    EXPECT_EQ(p.asked.count("k3"), 0u);
    // A kernel that cannot be asked: Jupyter's word stands (idle), not asked again until
    // it has activity of its own.
    v = j.judge({{"k4", "idle", 900}}, 1200, 1, "t");
    EXPECT_EQ(v.executing, 0);
    EXPECT_DOUBLE_EQ(v.last_active, 900);
    j.judge({{"k4", "idle", 1201}}, 1230, 1, "t");
    EXPECT_EQ(p.asked["k4"], 1);
    // Kernels gone from the list are forgotten (their open questions closed).
    EXPECT_EQ(p.forgotten, (std::set<std::string>{"k1", "k2", "k3"}));
    // "starting" for good (notebook 6, a kernel no frontend connected to) is asked too.
    p.answer["k5"] = ShellProbe::Answer::free;
    v = j.judge({{"k5", "starting", 800}}, 1300, 1, "t");
    EXPECT_EQ(v.executing, 0);
    EXPECT_EQ(p.asked["k5"], 1);
}

TEST(IdleSignals, JupyterReaderCountsAKernelItsShellFindsExecuting) {
    auto dir = temp_dir();
    auto file = dir / "jupyter.json";
    CannedServer s(http(200, R"([{"id":"0b6c-11","execution_state":"idle",
        "last_activity":"1970-01-01T00:10:00Z"}])"));
    ASSERT_TRUE(
        fs::write_file_atomic(file, nlohmann::json{{"port", s.port}, {"token", "tok"}}.dump()));
    auto probe = std::make_unique<FakeProbe>();
    probe->answer["0b6c-11"] = ShellProbe::Answer::blocked;
    auto *seen = probe.get();
    auto r = jupyter_reader(file, std::move(probe))->read(1000);
    EXPECT_EQ(r.level, Level::busy) << r.value;
    EXPECT_NE(r.value.find("1 executing, 1 that Jupyter calls idle"), std::string::npos) << r.value;
    EXPECT_EQ(seen->asked["0b6c-11"], 1);
    stdfs::remove_all(dir);
}

TEST(IdleSignals, KernelIdsFromJupyterAreCheckedBeforeUse) {
    auto k = parse_jupyter_list(R"([{"id":"../../api/x","execution_state":"idle"},
        {"id":"4e1c2f0a-9d1b-4c52-8a55-0c1b7d2e3f40","execution_state":"idle"},{"id":7}])");
    ASSERT_TRUE(k);
    EXPECT_EQ(k->items, 3);
    ASSERT_EQ(k->kernels.size(), 1u);
    EXPECT_EQ(k->kernels[0].id, "4e1c2f0a-9d1b-4c52-8a55-0c1b7d2e3f40");
}

namespace {

struct Scripted : SignalReader {
    std::shared_ptr<Reading> next;
    Reading read(double) override { return *next; }
};

} // namespace

TEST(IdleWatcher, StopsWithTheReasonLogsItAndWritesItsView) {
    auto dir = temp_dir();
    WatchFiles f{dir};
    Setting s;
    s.policy.idle_seconds = 60;
    ASSERT_TRUE(write_setting(f, s));
    auto next = std::make_shared<Reading>(quiet("ssh"));
    std::vector<std::unique_ptr<SignalReader>> readers;
    auto r = std::make_unique<Scripted>();
    r->next = next;
    readers.push_back(std::move(r));
    std::vector<std::string> stops, warns;
    Watcher w(
        f, std::move(readers),
        [&](const std::string &why) -> Result<> {
            stops.push_back(why);
            return {};
        },
        [&](const std::string &m) { warns.push_back(m); });
    double t = 1000;
    for (; t < 1059; t += 10)
        ASSERT_FALSE(w.tick(t));
    EXPECT_EQ(warns.size(), 1u);
    EXPECT_TRUE(w.tick(1060));
    ASSERT_EQ(stops.size(), 1u);
    EXPECT_EQ(stops[0], "idle 1m: no ssh activity");
    auto log = fs::read_file(f.stops());
    ASSERT_TRUE(log);
    EXPECT_NE(log->find("idle 1m: no ssh activity"), std::string::npos);
    auto view = nlohmann::json::parse(*fs::read_file(f.status()));
    EXPECT_EQ(view["schema"], "berth.idle/1");
    EXPECT_EQ(view["stopping"], "idle 1m: no ssh activity");
    EXPECT_EQ(view["signals"][0]["name"], "ssh");
    // `berth idle NAME off` (the file rewritten) is read at the next tick.
    s.policy.idle_seconds = 0;
    ASSERT_TRUE(write_setting(f, s));
    EXPECT_FALSE(w.tick(2000));
    EXPECT_EQ(stops.size(), 1u);
    // Back to 1m on a machine quiet for long: the clock starts again from the change.
    s.policy.idle_seconds = 60;
    ASSERT_TRUE(write_setting(f, s));
    EXPECT_FALSE(w.tick(3000));
    EXPECT_DOUBLE_EQ(w.last_status()["stops_at"].get<double>(), 3060);
    EXPECT_EQ(w.last_status()["busy_by"], "setting");
    stdfs::remove_all(dir);
}

TEST(IdleWatcher, AFailedSaveKeepsTheMachineUpAndRetriesUntilTheHardLimit) {
    auto dir = temp_dir();
    WatchFiles f{dir};
    Setting s;
    s.policy.idle_seconds = 60;
    s.policy.deadline = 2000;
    ASSERT_TRUE(write_setting(f, s));
    auto next = std::make_shared<Reading>(quiet("ssh"));
    std::vector<std::unique_ptr<SignalReader>> readers;
    auto r = std::make_unique<Scripted>();
    r->next = next;
    readers.push_back(std::move(r));
    int saves = 0, stops = 0;
    Watcher w(
        f, std::move(readers),
        [&](const std::string &) -> Result<> {
            ++stops;
            return {};
        },
        {},
        [&]() -> Result<> {
            ++saves;
            return fail("repository unreachable");
        });
    for (double t = 1000; t < 2000; t += 10)
        ASSERT_FALSE(w.tick(t)) << "no stop while the save fails, at " << t;
    EXPECT_EQ(stops, 0);
    EXPECT_GE(saves, 14); // every 60 s from 1060 to 1990
    EXPECT_LE(saves, 16);
    EXPECT_NE(w.last_status()["error"].get<std::string>().find("repository unreachable"),
              std::string::npos);
    EXPECT_TRUE(w.tick(2000)) << "the hard limit stops it anyway";
    EXPECT_EQ(stops, 1);
    stdfs::remove_all(dir);
}

TEST(IdleWatcher, DamagedFilesNeverStopAMachine) {
    auto dir = temp_dir();
    WatchFiles f{dir};
    ASSERT_TRUE(fs::write_file_atomic(f.config(), "{\"idle_seconds\": \"soon\"}"));
    ASSERT_FALSE(read_setting(f));
    std::vector<std::unique_ptr<SignalReader>> readers;
    int stops = 0;
    Watcher w(f, std::move(readers),
              [&](const std::string &) -> Result<> {
                  ++stops;
                  return {};
              },
              {});
    for (double t = 1000; t < 1000 + 86400; t += 600)
        w.tick(t);
    EXPECT_EQ(stops, 0);
    // A damaged hold file holds.
    ASSERT_TRUE(fs::write_file_atomic(f.hold(), "garbage"));
    EXPECT_TRUE(read_hold(f).in_force(1e12));
    ASSERT_TRUE(release_hold(f));
    EXPECT_FALSE(read_hold(f).in_force(0));
    stdfs::remove_all(dir);
}
