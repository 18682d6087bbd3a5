#include "agent/bootstrap.hpp"

#include "agent/machine.hpp"
#include "agent/persist.hpp"
#include "agent/watch.hpp"
#include "core/paths.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/net.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace berth {

namespace stdfs = std::filesystem;

namespace {

stdfs::path home() {
    const char *h = std::getenv("HOME");
    return h && *h ? stdfs::path(h) : stdfs::path("/root");
}

stdfs::path state_dir() {
    return paths::agent_dir();
}

// Starts argv fully detached (own session, stdio to log); returns the grandchild's pid.
Result<pid_t> spawn_detached(const std::vector<std::string> &argv, const stdfs::path &log,
                             const std::string &cwd,
                             const std::vector<std::pair<std::string, std::string>> &env = {}) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return fail_errno("pipe", errno);
    pid_t child = ::fork();
    if (child < 0) return fail_errno("fork", errno);
    if (child == 0) {
        ::setsid();
        pid_t g = ::fork();
        if (g != 0) {
            (void)!::write(fds[1], &g, sizeof g);
            ::_exit(0);
        }
        int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
        int in = ::open("/dev/null", O_RDONLY);
        ::dup2(in, 0);
        ::dup2(out, 1);
        ::dup2(out, 2);
        if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
        for (const auto &[k, v] : env)
            ::setenv(k.c_str(), v.c_str(), 1);
        std::vector<char *> a;
        for (const auto &s : argv)
            a.push_back(const_cast<char *>(s.c_str()));
        a.push_back(nullptr);
        ::execvp(a[0], a.data());
        std::fprintf(stderr, "cannot run %s: %s\n", a[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(fds[1]);
    pid_t g = -1;
    (void)!::read(fds[0], &g, sizeof g);
    ::close(fds[0]);
    ::waitpid(child, nullptr, 0);
    return g;
}

bool alive_with(pid_t pid, const std::string &needle) {
    if (pid <= 0 || ::kill(pid, 0) != 0) return false;
    auto cmd = fs::read_file("/proc/" + std::to_string(pid) + "/cmdline");
    return cmd && str::contains(*cmd, needle);
}

Result<nlohmann::json> ensure_jupyter(const std::string &workdir) {
    auto file = state_dir() / "jupyter.json";
    if (auto text = fs::read_file(file)) {
        auto j = nlohmann::json::parse(*text, nullptr, false);
        if (j.is_object()) {
            int pid = j.value("pid", 0), port = j.value("port", 0);
            std::string token = j.value("token", std::string());
            auto http = net::http_status("127.0.0.1", port, "/api/status?token=" + token,
                                         std::chrono::milliseconds(1000));
            if (alive_with(pid, "jupyter") && http && *http == 200) {
                j["reused"] = true;
                return j;
            }
        }
    }
    auto port = net::free_loopback_port();
    if (!port) return tl::unexpected(port.error());
    std::string token = random_hex(24);
    auto argv = jupyter_command(*port, workdir);
    if (argv.empty())
        return fail("Jupyter is not installed on the machine",
                    "use an image with Jupyter (fastdotai/fastai-course has it)");
    auto pid =
        spawn_detached(argv, state_dir() / "jupyter.log", workdir, {{"JUPYTER_TOKEN", token}});
    if (!pid) return tl::unexpected(pid.error());
    nlohmann::json j{{"pid", *pid}, {"port", *port}, {"token", token}, {"reused", false}};
    BERTH_TRY(fs::write_file_atomic(file, j.dump() + "\n", 0600));
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
    while (std::chrono::steady_clock::now() < deadline) {
        if (::kill(*pid, 0) != 0)
            return fail("Jupyter exited at start", "see " + (state_dir() / "jupyter.log").string());
        auto http = net::http_status("127.0.0.1", *port, "/api/status?token=" + token,
                                     std::chrono::milliseconds(500));
        if (http && *http == 200) return j;
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
    return fail("Jupyter did not answer within 90 s",
                "see " + (state_dir() / "jupyter.log").string());
}

} // namespace

namespace {

// "~" and "~/x" are under $HOME (the client cannot know the machine's home).
std::string expand_home(const std::string &p) {
    if (p == "~") return home().string();
    if (p.rfind("~/", 0) == 0) return (home() / p.substr(2)).string();
    return p;
}

} // namespace

Result<nlohmann::json> bootstrap_machine(const BootstrapOptions &given) {
    auto t0 = std::chrono::steady_clock::now();
    BootstrapOptions o = given;
    o.workdir = expand_home(o.workdir);
    o.store = expand_home(o.store);
    if (o.workdir.empty() || o.workdir[0] != '/' || (!o.store.empty() && o.store[0] != '/'))
        return fail(ErrorKind::user, "the work directory and the store must be absolute paths", "",
                    2);
    BERTH_TRY(fs::make_dirs(state_dir(), 0700));
    BERTH_TRY(fs::make_dirs(o.workdir, 0755));
    nlohmann::json out{{"schema", "berth.bootstrap/1"}};
    // 1. Persistence, into the machine's kept volume.
    Store store{o.store.empty() ? stdfs::path(o.workdir) / ".berth" / "storage"
                                : stdfs::path(o.store)};
    BERTH_TRY(fs::make_dirs(store.root, 0700));
    MigrationObserver quiet;
    bool fresh = !stdfs::exists(store.manifest());
    if (o.link_home) {
        auto run = fresh ? persist_init(store, home(), quiet)
                         : persist_restore(store, home(), quiet, std::chrono::seconds(10));
        if (!run) return tl::unexpected(run.error());
        out["persist"] = {
            {"store", store.root.string()}, {"paths", run->items.size()}, {"initialized", fresh}};
    } else {
        out["persist"] = {{"store", store.root.string()}, {"paths", 0}, {"linked", false}};
    }
    // 2. Jupyter.
    auto j = ensure_jupyter(o.workdir);
    if (!j) return tl::unexpected(j.error());
    out["jupyter_port"] = (*j)["port"];
    out["jupyter_token"] = (*j)["token"];
    out["jupyter_reused"] = (*j)["reused"];
    // 3. The watcher (idle stop and the max-hours deadline): one per machine, replaced at
    // every bootstrap (the deadline counts from this boot, as the local provider's does).
    auto files = idle::machine_files();
    idle::Setting setting;
    setting.policy.idle_seconds = o.idle_seconds;
    setting.policy.deadline =
        o.max_hours > 0
            ? static_cast<double>(std::time(nullptr) + static_cast<long long>(o.max_hours * 3600))
            : 0;
    setting.thresholds = o.thresholds;
    BERTH_TRY(idle::write_setting(files, setting));
    auto pid_file = state_dir() / "watch.pid";
    for (const char *old_file : {"watch.pid", "watchdog.pid"}) {
        if (auto text = fs::read_file(state_dir() / old_file)) {
            pid_t old = std::atoi(text->c_str());
            if (alive_with(old, "watch")) ::kill(old, SIGTERM);
            ::unlink((state_dir() / old_file).c_str());
        }
    }
    auto self = stdfs::read_symlink("/proc/self/exe");
    auto pid = spawn_detached({self.string(), "agent", "watch", "--stop", "provider", "--provider",
                               o.provider, "--api-url", o.api_url, "--label", o.label},
                              state_dir() / "watch.log", "/");
    if (!pid) return tl::unexpected(pid.error());
    BERTH_TRY(fs::write_file_atomic(pid_file, std::to_string(*pid) + "\n", 0600));
    out["deadline"] = setting.policy.deadline;
    out["idle_seconds"] = setting.policy.idle_seconds;
    out["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
}

} // namespace berth
