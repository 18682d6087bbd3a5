#include "agent/machine.hpp"

#include "agent/hooks.hpp"
#include "agent/persist.hpp"
#include "agent/watch.hpp"
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
#include <nlohmann/json.hpp>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace berth {

namespace stdfs = std::filesystem;

namespace {

volatile sig_atomic_t g_stop = 0;
extern "C" void on_term(int) {
    g_stop = 1;
}

// Without SA_RESTART, so a blocking waitpid returns EINTR and sees the stop.
void catch_stop() {
    struct sigaction sa {};
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
}

void log(const std::string &s) {
    std::time_t t = std::time(nullptr);
    char ts[32];
    std::strftime(ts, sizeof ts, "%H:%M:%S", std::localtime(&t));
    std::fprintf(stderr, "%s agent: %s\n", ts, s.c_str());
    std::fflush(stderr);
}

// machine.json lives in the instance directory, written through a directory fd kept from
// before the chroot.
struct StateFile {
    int dirfd = -1;
    nlohmann::json j = nlohmann::json::object();
    void write() {
        std::string text = j.dump() + "\n";
        int fd =
            ::openat(dirfd, "machine.json.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) return;
        ::fchmod(fd, 0600); // it holds Jupyter's token: the owner's alone, whatever was there
        (void)!::write(fd, text.data(), text.size());
        ::fsync(fd);
        ::close(fd);
        ::renameat(dirfd, "machine.json.tmp", dirfd, "machine.json");
    }
    void set(const std::string &state, const std::string &message) {
        j["state"] = state;
        j["message"] = message;
        j["updated"] = static_cast<long long>(std::time(nullptr));
        write();
        log(state + ": " + message);
    }
};

bool do_mount(const char *src, const stdfs::path &dst, const char *type, unsigned long flags,
              const char *data = nullptr) {
    if (::mount(src, dst.c_str(), type, flags, data) == 0) return true;
    log(std::string("mount ") + (type ? type : "bind") + " on " + dst.string() + ": " +
        std::strerror(errno));
    return false;
}

// The machine's shape, from spec.json (see InstanceSpec): defaults make the local provider's
// machines; the Vast replica asks for bare ones (sshd only, /workspace, no /storage).
struct Shape {
    bool jupyter = true, storage = true, install_berth = true;
    std::string workdir = "/notebooks", onstart;
    std::vector<std::pair<std::string, std::string>> env;
    // A virtual machine (the Paperspace replica's): its whole disk kept across stop and start
    // (DIR/disk), a login user with sudo, and sshd on a given address and port.
    bool keep_disk = false;
    std::string user;       // "paperspace": created on the first boot
    std::string ssh_listen; // "127.10.0.5"; empty: 127.0.0.1
    int ssh_port = 0;       // 0: a free port
};

Shape shape_of(const nlohmann::json &spec) {
    Shape s;
    s.jupyter = spec.value("jupyter", true);
    s.storage = spec.value("storage", true);
    s.install_berth = spec.value("install_berth", true);
    s.workdir = spec.value("workdir", std::string("/notebooks"));
    if (s.workdir.empty() || s.workdir[0] != '/' || str::contains(s.workdir, ".."))
        s.workdir = "/notebooks";
    s.onstart = spec.value("onstart", std::string());
    s.keep_disk = spec.value("keep_disk", false);
    s.user = spec.value("user", std::string());
    if (s.user.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos)
        s.user.clear();
    s.ssh_listen = spec.value("ssh_listen", std::string());
    if (s.ssh_listen.find_first_not_of("0123456789.") != std::string::npos) s.ssh_listen.clear();
    s.ssh_port = spec.value("ssh_port", 0);
    if (spec.contains("env") && spec["env"].is_object())
        for (const auto &[k, v] : spec["env"].items())
            if (v.is_string()) s.env.emplace_back(k, v.get<std::string>());
    return s;
}

// Builds the root under DIR/mnt/root and chroots into it. Returns false with a logged reason.
bool build_root(const InstanceDir &dir, const stdfs::path &store, const std::string &name,
                const Shape &shape) {
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
    ::sethostname(name.c_str(), name.size());
    auto mnt = dir.mnt();
    ::mkdir(mnt.c_str(), 0700);
    // The ephemeral layer: tmpfs, so it is gone when the namespace is. A VM keeps its layer
    // in DIR/disk instead (its whole disk survives stop and start).
    if (!do_mount("berth-ephemeral", mnt, "tmpfs", 0, "mode=0700")) return false;
    for (const char *d : {"upper", "work", "root"})
        ::mkdir((mnt / d).c_str(), 0755);
    auto upper = mnt / "upper", work = mnt / "work";
    if (shape.keep_disk) {
        upper = dir.root / "disk" / "upper";
        work = dir.root / "disk" / "work";
        std::error_code ec;
        stdfs::create_directories(upper, ec);
        stdfs::create_directories(work, ec);
    }
    std::string opts = "lowerdir=/,upperdir=" + upper.string() + ",workdir=" + work.string();
    auto root = mnt / "root";
    if (!do_mount("berth-root", root, "overlay", 0, opts.c_str())) return false;
    for (const char *d : {"proc", "dev", "sys", "tmp", "run", "root"})
        ::mkdir((root / d).c_str(), 0755);
    std::error_code ec;
    stdfs::create_directories(root / shape.workdir.substr(1), ec);
    if (shape.storage) ::mkdir((root / "storage").c_str(), 0755);
    bool ok = do_mount("proc", root / "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC) &&
              do_mount("/dev", root / "dev", nullptr, MS_BIND | MS_REC) && // GPUs' /dev/nvidia* too
              do_mount("/sys", root / "sys", nullptr, MS_BIND | MS_REC) &&
              do_mount("tmpfs", root / "tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") &&
              do_mount("tmpfs", root / "run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") &&
              (shape.keep_disk || do_mount("tmpfs", root / "root", "tmpfs", 0, "mode=0700")) &&
              (!shape.storage || do_mount(store.c_str(), root / "storage", nullptr, MS_BIND)) &&
              (shape.keep_disk ||
               do_mount(dir.notebooks().c_str(), root / shape.workdir.substr(1), nullptr, MS_BIND));
    if (!ok) return false;
    // Keys added while the machine runs (the replica's `attach ssh`) land in DIR/keys.
    if (stdfs::is_directory(dir.root / "keys")) {
        ::mkdir((root / "run/berth-keys").c_str(), 0755);
        do_mount((dir.root / "keys").c_str(), root / "run/berth-keys", nullptr, MS_BIND);
    }
    ::mkdir((root / "dev/shm").c_str(), 01777);
    do_mount("tmpfs", root / "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    if (::chroot(root.c_str()) != 0 || ::chdir("/root") != 0) {
        log(std::string("chroot: ") + std::strerror(errno));
        return false;
    }
    return true;
}

// A VM's login user, as its image ships it: a home from /etc/skel, sudo without a password.
// Written on the first boot only (the disk keeps it).
void add_user(const std::string &user) {
    auto passwd = fs::read_file("/etc/passwd").value_or("");
    if (passwd.find("\n" + user + ":") != std::string::npos || passwd.rfind(user + ":", 0) == 0)
        return;
    int uid = 1000;
    for (bool taken = true; taken && uid < 60000;) {
        taken = false;
        for (const auto &line : str::split(passwd, '\n')) {
            auto f = str::split(line, ':');
            if (f.size() > 3 && (f[2] == std::to_string(uid) || f[3] == std::to_string(uid)))
                taken = true;
        }
        if (taken) ++uid;
    }
    std::string id = std::to_string(uid), home = "/home/" + user;
    (void)fs::write_file_atomic(
        "/etc/passwd", passwd + user + ":x:" + id + ":" + id + "::" + home + ":/bin/bash\n", 0644);
    auto group = fs::read_file("/etc/group").value_or("");
    (void)fs::write_file_atomic("/etc/group", group + user + ":x:" + id + ":\n", 0644);
    auto shadow = fs::read_file("/etc/shadow").value_or("");
    (void)fs::write_file_atomic("/etc/shadow", shadow + user + ":*:19000:0:99999:7:::\n", 0640);
    std::error_code ec;
    stdfs::create_directories(home, ec);
    for (const auto &e : stdfs::directory_iterator("/etc/skel", ec))
        stdfs::copy(e.path(), home / e.path().filename(), stdfs::copy_options::recursive, ec);
    for (const auto &e : stdfs::recursive_directory_iterator(home, ec))
        (void)::lchown(e.path().c_str(), uid, uid);
    (void)::chown(home.c_str(), uid, uid);
    ::chmod(home.c_str(), 0750);
    if (stdfs::is_directory("/etc/sudoers.d"))
        (void)fs::write_file_atomic("/etc/sudoers.d/90-" + user, user + " ALL=(ALL) NOPASSWD:ALL\n",
                                    0440);
}

void prepare_system(const std::string &name, const std::string &berth_binary, const Shape &shape) {
    (void)fs::write_file_atomic("/etc/hostname", name + "\n", 0644);
    auto hosts = fs::read_file("/etc/hosts").value_or("");
    if (!str::contains(hosts, " " + name + "\n"))
        (void)fs::write_file_atomic("/etc/hosts", hosts + "127.0.1.1 " + name + "\n", 0644);
    // berth itself, so the client can run `berth agent ...` over SSH.
    if (!berth_binary.empty() && shape.install_berth)
        (void)fs::write_file_atomic("/usr/local/bin/berth", berth_binary, 0755);
    // A fresh $HOME, as an image would ship it.
    std::error_code ec;
    for (const auto &e : stdfs::directory_iterator("/etc/skel", ec))
        stdfs::copy(e.path(), "/root" / e.path().filename(), stdfs::copy_options::recursive, ec);
    ::clearenv();
    ::setenv("HOME", "/root", 1);
    ::setenv("USER", "root", 1);
    ::setenv("LOGNAME", "root", 1);
    ::setenv("SHELL", "/bin/bash", 1);
    ::setenv("LANG", "C.UTF-8", 1);
    ::setenv("PATH",
             "/root/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
    for (const auto &[k, v] : shape.env)
        if (!k.empty() && k[0] != '-') ::setenv(k.c_str(), v.c_str(), 1);
    if (!shape.user.empty()) add_user(shape.user);
}

void restore_persistence(StateFile &st) {
    st.set("loading", "restoring persistence from /storage");
    Store store{"/storage"};
    MigrationObserver quiet;
    bool fresh = !stdfs::exists(store.manifest());
    auto run = fresh ? persist_init(store, "/root", quiet)
                     : persist_restore(store, "/root", quiet, std::chrono::seconds(10));
    if (!run)
        log("persistence: " + run.error().line());
    else
        log("persistence: " + std::to_string(run->items.size()) + " paths linked in " +
            str::human_duration(run->seconds));
}

pid_t spawn(const std::vector<std::string> &argv, const char *cwd,
            const std::vector<std::pair<std::string, std::string>> &env) {
    pid_t pid = ::fork();
    if (pid != 0) return pid;
    ::setsid();
    for (const auto &[k, v] : env)
        ::setenv(k.c_str(), v.c_str(), 1);
    if (cwd && ::chdir(cwd) != 0) ::_exit(126);
    std::vector<char *> a;
    for (const auto &s : argv)
        a.push_back(const_cast<char *>(s.c_str()));
    a.push_back(nullptr);
    ::execvp(a[0], a.data());
    std::fprintf(stderr, "agent: cannot run %s: %s\n", a[0], std::strerror(errno));
    ::_exit(127);
}

struct Service {
    std::string name;
    std::vector<std::string> argv;
    const char *cwd = nullptr;
    std::vector<std::pair<std::string, std::string>> env; // secrets go here, never in argv
    pid_t pid = -1;
    int restarts = 0;
};

std::optional<Service> sshd_service(const std::string &host_key, const std::string &auth_keys,
                                    int port, const std::string &listen) {
    auto sshd = proc::which("sshd");
    if (!sshd && stdfs::exists("/usr/sbin/sshd")) sshd = "/usr/sbin/sshd";
    if (!sshd) return std::nullopt;
    ::mkdir("/run/sshd", 0755);
    ::mkdir("/run/berth", 0700);
    (void)fs::write_file_atomic("/run/berth/ssh_host_ed25519_key", host_key, 0600);
    (void)fs::write_file_atomic("/run/berth/authorized_keys", auth_keys, 0600);
    std::string cfg =
        "Port " + std::to_string(port) + "\nListenAddress " +
        (listen.empty() ? std::string("127.0.0.1") : listen) +
        "\n"
        "HostKey /run/berth/ssh_host_ed25519_key\n"
        "AuthorizedKeysFile /run/berth/authorized_keys /run/berth-keys/authorized_keys "
        ".ssh/authorized_keys\n"
        "PidFile /run/berth/sshd.pid\nUsePAM no\nStrictModes no\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nAllowTcpForwarding local\nX11Forwarding no\n"
        "PrintMotd no\nAcceptEnv LANG LC_*\n"
        "SetEnv "
        "PATH=/root/.local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
        "Subsystem sftp internal-sftp\n";
    (void)fs::write_file_atomic("/run/berth/sshd_config", cfg, 0600);
    return Service{"sshd", {*sshd, "-D", "-e", "-f", "/run/berth/sshd_config"}};
}

std::optional<Service> jupyter_service(int port, const std::string &token) {
    auto argv = jupyter_command(port, "/notebooks");
    if (argv.empty()) return std::nullopt;
    return Service{"jupyter", argv, "/notebooks", {{"JUPYTER_TOKEN", token}}};
}

// The idle watcher (agent/watch.hpp), on machines with berth installed: its setting from
// spec.json's "idle" ({"seconds", "cpu_percent", ...}), Jupyter's port and token where it
// reads them, and it stops the machine by signalling PID 1 with its reason left in
// /run/berth/stop-reason.
std::optional<Service> watch_service(const nlohmann::json &spec, const std::string &token,
                                     int jupyter_port, std::time_t deadline, const Shape &shape) {
    if (!shape.install_berth || !stdfs::exists("/usr/local/bin/berth")) return std::nullopt;
    auto files = idle::machine_files();
    (void)fs::make_dirs(files.dir, 0700);
    idle::Setting s;
    const auto &i =
        spec.contains("idle") && spec["idle"].is_object() ? spec["idle"] : nlohmann::json::object();
    auto number = [&](const char *k, double d) {
        return i.contains(k) && i[k].is_number() ? i[k].get<double>() : d;
    };
    s.policy.idle_seconds = static_cast<long>(number("seconds", 0));
    s.policy.deadline = static_cast<double>(deadline);
    s.thresholds.cpu_percent = number("cpu_percent", s.thresholds.cpu_percent);
    s.thresholds.network_kbps = number("network_kbps", s.thresholds.network_kbps);
    s.thresholds.gpu_percent = number("gpu_percent", s.thresholds.gpu_percent);
    if (!idle::write_setting(files, s)) return std::nullopt;
    if (jupyter_port > 0)
        (void)fs::write_file_atomic(
            files.jupyter(), nlohmann::json{{"port", jupyter_port}, {"token", token}}.dump() + "\n",
            0600);
    return Service{"watch", {"/usr/local/bin/berth", "agent", "watch", "--stop", "pid1"}, "/"};
}

bool wait_ready(const std::string &ssh_host, int ssh_port, int jupyter_port,
                const std::string &token, const std::vector<Service> &svcs) {
    // jupyter_port 0: a bare machine, only sshd to wait for.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline && !g_stop) {
        for (const auto &s : svcs) {
            int status = 0;
            if (::waitpid(s.pid, &status, WNOHANG) == s.pid) {
                log(s.name + " exited during start (status " + std::to_string(status) + ")");
                return false;
            }
        }
        bool ssh = net::connectable(ssh_host, ssh_port, std::chrono::milliseconds(200));
        if (ssh && jupyter_port == 0) return true;
        auto http = net::http_status("127.0.0.1", jupyter_port, "/api/status?token=" + token,
                                     std::chrono::milliseconds(500));
        if (ssh && http && *http == 200) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
}

// PID 1's loop: reap everything, restart a dead service, stop at SIGTERM or the deadline.
std::string supervise(std::vector<Service> &svcs, std::time_t deadline, double max_hours) {
    for (;;) {
        if (g_stop) {
            // The watcher leaves its reason before it signals PID 1 (an idle stop); a stop
            // from outside (`berth stop`) leaves none.
            auto why = fs::read_file("/run/berth/stop-reason");
            if (why && !str::trim(*why).empty()) return str::trim(*why).substr(0, 300);
            return "stopped";
        }
        if (deadline && std::time(nullptr) >= deadline) {
            char msg[64];
            std::snprintf(msg, sizeof msg, "max-hours %.4g reached: stopped itself", max_hours);
            return msg;
        }
        int status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
            for (auto &s : svcs) {
                if (s.pid != pid) continue;
                if (++s.restarts > 20) return s.name + " keeps dying; see agent.log";
                log(s.name + " exited (status " + std::to_string(status) + "); restarting");
                std::this_thread::sleep_for(
                    std::chrono::milliseconds(200 * std::min(s.restarts, 10)));
                s.pid = spawn(s.argv, s.cwd, s.env);
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

void shutdown_all(std::vector<Service> &svcs) {
    for (auto &s : svcs)
        ::kill(-s.pid, SIGTERM);
    ::kill(-1, SIGTERM);
    for (int i = 0; i < 30; ++i) {
        while (::waitpid(-1, nullptr, WNOHANG) > 0) {
        }
        if (::kill(-1, 0) != 0 && errno == ESRCH) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(-1, SIGKILL);
}

int pid1(const InstanceDir &dir, const stdfs::path &store, const nlohmann::json &spec, int dirfd) {
    catch_stop();
    StateFile st{dirfd};
    std::string name = spec.value("name", std::string("berth"));
    double max_hours = spec.value("max_hours", 0.0);
    auto host_key = fs::read_file(dir.host_key());
    auto auth = fs::read_file(dir.authorized_keys());
    if (!host_key || !auth) {
        st.set("stopped", "instance files missing in " + dir.root.string());
        return 1;
    }
    // The static build if there is one (small, self-contained), else this binary; read before
    // the chroot hides the host's files.
    std::string berth_binary;
    if (auto st = find_static_binary()) berth_binary = fs::read_file(*st).value_or("");
    if (berth_binary.empty()) berth_binary = fs::read_file("/proc/self/exe").value_or("");
    Shape shape = shape_of(spec);
    if (!build_root(dir, store, name, shape)) {
        st.set("stopped", "could not build the machine's root (see agent.log)");
        return 1;
    }
    prepare_system(name, berth_binary, shape);
    if (shape.storage) restore_persistence(st);
    auto ssh_port = shape.ssh_port > 0 ? Result<int>(shape.ssh_port) : net::free_loopback_port();
    auto jup_port = shape.jupyter ? net::free_loopback_port() : Result<int>(0);
    if (!ssh_port || !jup_port) {
        st.set("stopped", "no free port on 127.0.0.1");
        return 1;
    }
    std::string token = shape.jupyter ? random_hex(24) : "";
    auto sshd = sshd_service(*host_key, *auth, *ssh_port, shape.ssh_listen);
    auto jup = shape.jupyter ? jupyter_service(*jup_port, token) : std::optional<Service>();
    if (!sshd || (shape.jupyter && !jup)) {
        st.set("stopped", !sshd ? "sshd not found in the machine (install openssh-server)"
                                : "Jupyter not found in the machine (install jupyter-notebook)");
        return 1;
    }
    std::vector<Service> svcs = {*sshd};
    if (jup) svcs.push_back(*jup);
    std::time_t deadline =
        max_hours > 0 ? std::time(nullptr) + static_cast<std::time_t>(max_hours * 3600) : 0;
    if (auto w = watch_service(spec, token, *jup_port, deadline, shape)) svcs.push_back(*w);
    st.set("loading", "starting sshd on 127.0.0.1:" + std::to_string(*ssh_port) +
                          (jup ? " and Jupyter on 127.0.0.1:" + std::to_string(*jup_port) : ""));
    for (auto &s : svcs)
        s.pid = spawn(s.argv, s.cwd, s.env);
    // The image's onstart script, once per boot, beside the services (as Vast runs it).
    if (!shape.onstart.empty()) {
        int fd = ::open("/var/log/onstart.log", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        pid_t pid = ::fork();
        if (pid == 0) {
            ::setsid();
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
            }
            ::execl("/bin/bash", "bash", "-c", shape.onstart.c_str(), static_cast<char *>(nullptr));
            ::_exit(127);
        }
        if (fd >= 0) ::close(fd);
    }
    st.j["ssh_port"] = *ssh_port;
    st.j["jupyter_port"] = *jup_port;
    st.j["jupyter_token"] = token;
    st.j["deadline"] = static_cast<long long>(deadline);
    if (!wait_ready(shape.ssh_listen.empty() ? "127.0.0.1" : shape.ssh_listen, *ssh_port, *jup_port,
                    token, svcs)) {
        shutdown_all(svcs);
        st.set("stopped", "sshd or Jupyter did not come up (see " + dir.log().string() + ")");
        return 1;
    }
    st.set("running", "ready");
    std::string why = supervise(svcs, deadline, max_hours);
    st.set("stopping", why);
    shutdown_all(svcs);
    st.set("stopped", why);
    return 0;
}

} // namespace

std::vector<std::string> jupyter_command(int port, const std::string &dir) {
    for (const char *app : {"jupyter-notebook", "jupyter-lab", "jupyter-server"}) {
        auto exe = proc::which(app);
        if (!exe) continue;
        std::string cls = std::string(app) == "jupyter-notebook" ? "NotebookApp" : "ServerApp";
        return {*exe,
                "--no-browser",
                "--allow-root",
                "--ip=127.0.0.1",
                "--port=" + std::to_string(port),
                "--port-retries=0",
                "--" + cls + ".notebook_dir=" + dir};
    }
    return {};
}

int run_machine_agent(const InstanceDir &dir, const stdfs::path &store) {
    auto spec_text = fs::read_file(dir.spec());
    if (!spec_text) {
        log(spec_text.error().line());
        return 1;
    }
    nlohmann::json spec = nlohmann::json::parse(*spec_text, nullptr, false);
    int dirfd = ::open(dir.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0) return 1;
    (void)fs::write_file_atomic(dir.pid_file(), std::to_string(::getpid()) + "\n");
    if (::unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWPID) != 0) {
        StateFile st{dirfd};
        st.set("stopped", std::string("cannot create namespaces: ") + std::strerror(errno) +
                              " (the local provider needs root)");
        return 1;
    }
    pid_t child = ::fork();
    if (child == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        ::_exit(pid1(dir, store, spec, dirfd));
    }
    // Outside: forward a stop to PID 1 and wait for the machine to end.
    catch_stop();
    int status = 0;
    bool forwarded = false;
    for (;;) {
        pid_t r = ::waitpid(child, &status, 0);
        if (r == child) break;
        if (r < 0 && errno == EINTR && g_stop && !forwarded) {
            ::kill(child, SIGTERM);
            forwarded = true;
        }
    }
    ::unlink(dir.pid_file().c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

} // namespace berth
