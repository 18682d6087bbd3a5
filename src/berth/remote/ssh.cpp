#include "remote/ssh.hpp"

#include "core/paths.hpp"
#include "util/fs.hpp"
#include "util/net.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <pwd.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace berth::ssh {

namespace stdfs = std::filesystem;

stdfs::path berth_dir() {
    return paths::data_home() / "berth";
}
stdfs::path key_file() {
    return berth_dir() / "id_ed25519";
}
stdfs::path known_hosts_file() {
    return berth_dir() / "known_hosts";
}
stdfs::path config_file() {
    return berth_dir() / "ssh_config";
}

Result<std::string> ensure_key() {
    auto pub = stdfs::path(key_file().string() + ".pub");
    if (!stdfs::exists(key_file())) {
        BERTH_TRY(fs::make_dirs(berth_dir(), 0700));
        auto r = proc::run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "berth", "-f",
                            key_file().string()});
        if (!r || r->status != 0)
            return fail("cannot create berth's SSH key " + key_file().string(),
                        "check that ssh-keygen (openssh-client) works");
    }
    auto text = fs::read_file(pub);
    if (!text) return tl::unexpected(text.error());
    return str::trim(*text);
}

static std::string without_alias(const std::string &text, const std::string &alias) {
    std::string out;
    for (const auto &line : str::split(text, '\n')) {
        if (line.empty()) continue;
        if (line.rfind(alias + " ", 0) == 0) continue;
        out += line + "\n";
    }
    return out;
}

Result<> pin_host_key(const std::string &alias, const std::string &host_key) {
    BERTH_TRY(fs::make_dirs(berth_dir(), 0700));
    auto text = fs::read_file(known_hosts_file()).value_or("");
    auto parts = str::split(host_key, ' ');
    if (parts.size() < 2) return fail("bad host key for " + alias);
    return fs::write_file_atomic(
        known_hosts_file(),
        without_alias(text, alias) + alias + " " + parts[0] + " " + parts[1] + "\n", 0644);
}

Result<> unpin(const std::string &alias) {
    auto text = fs::read_file(known_hosts_file());
    if (!text) return {};
    return fs::write_file_atomic(known_hosts_file(), without_alias(*text, alias), 0644);
}

std::vector<std::string> user_config_args() {
    auto cfg = paths::home() / ".ssh" / "config";
    struct passwd *pw = ::getpwuid(::getuid());
    if (pw && pw->pw_dir && stdfs::path(pw->pw_dir) == paths::home()) return {};
    if (!stdfs::exists(cfg)) return {};
    return {"-F", cfg.string()};
}

std::vector<std::string> options(const Target &t) {
    if (t.user_ssh) {
        auto out = user_config_args();
        if (t.port > 0) out.insert(out.end(), {"-p", std::to_string(t.port)});
        if (!t.user.empty()) out.insert(out.end(), {"-l", t.user});
        out.insert(out.end(), {"-o", "ServerAliveInterval=30"});
        return out;
    }
    std::vector<std::string> out;
    if (!t.jump.empty()) {
        out = user_config_args(); // ssh hands -F to the jump's own ssh too
        out.insert(out.end(), {"-J", t.jump});
    }
    std::vector<std::string> own = {
        "-i", key_file().string(),
        "-p", std::to_string(t.port),
        "-l", t.user,
        "-o", "HostKeyAlias=" + t.alias,
        "-o", "UserKnownHostsFile=\"" + known_hosts_file().string() + "\"",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "ServerAliveInterval=30"};
    out.insert(out.end(), own.begin(), own.end());
    return out;
}

Result<> write_config(const std::vector<Target> &targets) {
    std::string text = "# written by berth; `berth ssh-config` includes it from ~/.ssh/config\n";
    for (const auto &t : targets)
        if (!t.user_ssh) // the user's own hosts are in the user's own config already
            text += "\nHost " + t.alias + "\n  HostName " + t.host + "\n  Port " +
                    std::to_string(t.port) + "\n  User " + t.user + "\n  IdentityFile \"" +
                    key_file().string() + "\"" + "\n  HostKeyAlias " + t.alias +
                    "\n  UserKnownHostsFile \"" + known_hosts_file().string() + "\"" +
                    "\n  StrictHostKeyChecking yes\n  ServerAliveInterval 30\n" +
                    (t.jump.empty() ? std::string() : "  ProxyJump " + t.jump + "\n");
    BERTH_TRY(fs::make_dirs(berth_dir(), 0700));
    return fs::write_file_atomic(config_file(), text, 0644);
}

Result<bool> install_include(const stdfs::path &user_config) {
    std::string line = "Include \"" + config_file().string() + "\"";
    auto text = fs::read_file(user_config).value_or("");
    if (str::contains(text, line)) return false;
    BERTH_TRY(fs::make_dirs(user_config.parent_path(), 0700));
    // Include must come before the first Host block to apply to every host.
    return fs::write_file_atomic(user_config, "# added by berth\n" + line + "\n\n" + text, 0600)
        .map([] { return true; });
}

Result<> wait_ready(const Target &t, std::chrono::seconds timeout, bool key_arrives_late) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    auto delay = std::chrono::milliseconds(100);
    std::string last;
    for (;;) {
        std::vector<std::string> argv = {"ssh",           "-T", "-o",
                                         "BatchMode=yes", "-o", "ConnectTimeout=5"};
        auto opts = options(t);
        argv.insert(argv.end(), opts.begin(), opts.end());
        argv.insert(argv.end(), {t.host, "true"});
        auto r = proc::run(argv, {std::nullopt, {}, std::chrono::seconds(20)});
        if (r && r->status == 0) return {};
        last = r ? str::trim(r->err) : r.error().what;
        bool retryable =
            str::contains(last, "Connection refused") || str::contains(last, "Connection reset") ||
            str::contains(last, "Connection closed") || str::contains(last, "timed out") ||
            (r && r->timed_out) || (key_arrives_late && str::contains(last, "Permission denied"));
        if (!retryable || std::chrono::steady_clock::now() + delay > deadline) break;
        std::this_thread::sleep_for(delay);
        delay = std::min(delay * 2, std::chrono::milliseconds(2000));
    }
    auto lines = str::split(last, '\n');
    return fail("ssh to " + t.alias + " failed: " + (lines.empty() ? last : lines.back()),
                "see `berth status " + t.alias.substr(6) + "`");
}

bool is_ssh_process(pid_t pid) {
    if (pid <= 0 || ::kill(pid, 0) != 0) return false;
    auto cmd = fs::read_file("/proc/" + std::to_string(pid) + "/cmdline");
    return cmd && cmd->rfind("ssh", 0) == 0;
}

Result<pid_t> start_tunnel(const Target &t, int local_port, int remote_port) {
    std::vector<std::string> argv = {"ssh",
                                     "-N",
                                     "-T",
                                     "-o",
                                     "BatchMode=yes",
                                     "-o",
                                     "ExitOnForwardFailure=yes",
                                     "-L",
                                     "127.0.0.1:" + std::to_string(local_port) +
                                         ":127.0.0.1:" + std::to_string(remote_port)};
    auto opts = options(t);
    argv.insert(argv.end(), opts.begin(), opts.end());
    argv.push_back(t.host);
    auto exe = proc::which("ssh");
    if (!exe) return fail("ssh not found", "install openssh-client");
    pid_t pid = ::fork();
    if (pid < 0) return fail_errno("fork", errno);
    if (pid == 0) {
        ::setsid();
        int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(null, 2);
        std::vector<char *> a;
        for (auto &s : argv)
            a.push_back(s.data());
        a.push_back(nullptr);
        ::execv(exe->c_str(), a.data());
        ::_exit(127);
    }
    for (int i = 0; i < 100; ++i) {
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) == pid)
            return fail("the SSH tunnel to " + t.alias + " exited",
                        "check `berth ssh " + t.alias.substr(6) + "`");
        if (net::connectable("127.0.0.1", local_port, std::chrono::milliseconds(100))) return pid;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(pid, SIGTERM);
    return fail("the SSH tunnel to " + t.alias + " did not open",
                "check `berth ssh " + t.alias.substr(6) + "`");
}

} // namespace berth::ssh
