#include "util/process.hpp"

#include "util/strings.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

namespace berth::proc {

std::optional<std::string> which(const std::string &name) {
    if (name.find('/') != std::string::npos)
        return ::access(name.c_str(), X_OK) == 0 ? std::optional(name) : std::nullopt;
    const char *path = std::getenv("PATH");
    for (const auto &dir : str::split(path ? path : "/usr/bin:/bin", ':')) {
        std::string cand = (dir.empty() ? "." : dir) + "/" + name;
        struct stat st {};
        if (::stat(cand.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
            ::access(cand.c_str(), X_OK) == 0)
            return cand;
    }
    return std::nullopt;
}

Result<Output> run(const std::vector<std::string> &argv, const Options &opt) {
    auto exe = which(argv.at(0));
    if (!exe) return fail(argv[0] + " not found on PATH", "install it");
    int in_p[2], out_p[2], err_p[2];
    if (::pipe2(in_p, O_CLOEXEC) || ::pipe2(out_p, O_CLOEXEC) || ::pipe2(err_p, O_CLOEXEC))
        return fail_errno("pipe", errno);
    std::vector<std::string> env_s;
    for (char **e = environ; *e; ++e)
        env_s.emplace_back(*e);
    for (const auto &kv : opt.env)
        env_s.push_back(kv);
    std::vector<char *> args, envp;
    for (const auto &a : argv)
        args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    for (auto &e : env_s)
        envp.push_back(e.data());
    envp.push_back(nullptr);

    pid_t pid = ::fork();
    if (pid < 0) return fail_errno("fork", errno);
    if (pid == 0) {
        ::dup2(in_p[0], 0);
        ::dup2(out_p[1], 1);
        ::dup2(err_p[1], 2);
        ::setpgid(0, 0);
        ::execve(exe->c_str(), args.data(), envp.data());
        ::_exit(127);
    }
    ::close(in_p[0]);
    ::close(out_p[1]);
    ::close(err_p[1]);
    if (opt.input) {
        std::string_view data = *opt.input;
        ::signal(SIGPIPE, SIG_IGN);
        while (!data.empty()) {
            ssize_t n = ::write(in_p[1], data.data(), data.size());
            if (n <= 0) break;
            data.remove_prefix(static_cast<std::size_t>(n));
        }
    }
    ::close(in_p[1]);

    Output res;
    auto deadline = std::chrono::steady_clock::now() + opt.timeout;
    pollfd fds[2] = {{out_p[0], POLLIN, 0}, {err_p[0], POLLIN, 0}};
    int open_fds = 2;
    char buf[8192];
    while (open_fds > 0) {
        int wait_ms = -1;
        if (opt.timeout.count() > 0) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                ::kill(-pid, SIGKILL);
                res.timed_out = true;
                break;
            }
            wait_ms = static_cast<int>(left.count());
        }
        int n = ::poll(fds, 2, wait_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
            if (r <= 0) {
                ::close(fds[i].fd);
                fds[i].fd = -1;
                --open_fds;
            } else {
                (i == 0 ? res.out : res.err).append(buf, static_cast<std::size_t>(r));
            }
        }
    }
    for (auto &f : fds)
        if (f.fd >= 0) ::close(f.fd);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    res.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (res.status == 127 && res.out.empty() && res.err.empty())
        return fail("cannot execute " + *exe, "check that it is a working program");
    return res;
}

} // namespace berth::proc

namespace berth::proc {

Result<Pipe> spawn_pipe(const std::vector<std::string> &argv) {
    auto exe = which(argv.at(0));
    if (!exe) return fail(argv[0] + " not found on PATH", "install it");
    int in_p[2], out_p[2];
    if (::pipe2(in_p, O_CLOEXEC) || ::pipe2(out_p, O_CLOEXEC)) return fail_errno("pipe", errno);
    std::vector<char *> args;
    for (const auto &a : argv)
        args.push_back(const_cast<char *>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) return fail_errno("fork", errno);
    if (pid == 0) {
        ::dup2(in_p[0], 0);
        ::dup2(out_p[1], 1);
        ::execv(exe->c_str(), args.data());
        ::_exit(127);
    }
    ::close(in_p[0]);
    ::close(out_p[1]);
    ::signal(SIGPIPE, SIG_IGN);
    return Pipe{pid, in_p[1], out_p[0]};
}

int wait_pipe(Pipe &p) {
    if (p.in >= 0) ::close(p.in);
    if (p.out >= 0) ::close(p.out);
    p.in = p.out = -1;
    int status = 0;
    while (::waitpid(p.pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Result<> write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail_errno("write to the stream", errno);
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

Result<std::string> read_exact(int fd, std::size_t n) {
    std::string out(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::read(fd, out.data() + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail_errno("read from the stream", errno);
        if (r == 0)
            return fail("the stream ended early (the other side failed; see its message above)");
        got += static_cast<std::size_t>(r);
    }
    return out;
}

} // namespace berth::proc
