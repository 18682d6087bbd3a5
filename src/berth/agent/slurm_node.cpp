#include "agent/slurm_node.hpp"

#include "util/fs.hpp"
#include "util/net.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <arpa/inet.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace berth {

namespace stdfs = std::filesystem;

namespace {

volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) {
    g_stop = 1;
}

int free_port_any() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    a.sin_port = 0;
    socklen_t len = sizeof a;
    int port = -1;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    ::close(fd);
    return port;
}

std::string env(const char *k, const std::string &def = "") {
    const char *v = std::getenv(k);
    return v && *v ? std::string(v) : def;
}

int say_fail(const std::string &what) {
    std::fprintf(stderr, "berth agent slurm-node: %s\n", what.c_str());
    return 1;
}

} // namespace

int run_slurm_node(const stdfs::path &dir) {
    std::string node_id = env("SLURM_NODEID", "0");
    if (node_id.find_first_not_of("0123456789") != std::string::npos || node_id.size() > 5)
        return say_fail("bad SLURM_NODEID");
    auto k = dir / ("node" + node_id);
    std::error_code ec;
    stdfs::remove_all(k, ec);
    if (!fs::make_dirs(k, 0700)) return say_fail("cannot make " + k.string());
    auto key = k / "ssh_host_ed25519_key";
    auto kg = proc::run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                         "berth-slurm-" + env("SLURM_JOB_ID", "job"), "-f", key.string()});
    if (!kg || kg->status != 0) return say_fail("ssh-keygen failed for the node's host key");
    std::string sshd = "/usr/sbin/sshd";
    if (!stdfs::exists(sshd)) {
        auto w = proc::which("sshd");
        if (!w) return say_fail("sshd is not installed on node " + env("SLURMD_NODENAME", "?"));
        sshd = *w;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGHUP, &sa, nullptr);
    for (int attempt = 0; attempt < 5 && !g_stop; ++attempt) {
        int port = free_port_any();
        if (port <= 0) return say_fail("no free port on this node");
        std::string cfg = "Port " + std::to_string(port) + "\nListenAddress 0.0.0.0\nHostKey " +
                          key.string() + "\nPidFile " + (k / "sshd.pid").string() +
                          "\nAuthorizedKeysFile " + (dir / "authorized_keys").string() +
                          "\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
                          "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
                          "PermitRootLogin prohibit-password\nAllowTcpForwarding yes\n"
                          "X11Forwarding no\nPrintMotd no\nSubsystem sftp internal-sftp\n"
                          // Its sessions are this machine's (the idle watcher counts them).
                          "SetEnv BERTH_AGENT_DIR=" +
                          dir.string() + "\n";
        if (!fs::write_file_atomic(k / "sshd_config", cfg, 0600))
            return say_fail("cannot write the node's sshd config");
        pid_t pid = ::fork();
        if (pid < 0) return say_fail("fork failed");
        if (pid == 0) {
            auto log = (k / "sshd.log").string();
            int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (out >= 0) {
                ::dup2(out, 1);
                ::dup2(out, 2);
            }
            std::string f = (k / "sshd_config").string();
            ::execl(sshd.c_str(), sshd.c_str(), "-D", "-e", "-f", f.c_str(), (char *)nullptr);
            ::_exit(127);
        }
        bool up = net::wait_ssh("127.0.0.1", port, std::chrono::seconds(20));
        int st = 0;
        if (!up || ::waitpid(pid, &st, WNOHANG) == pid) {
            ::kill(pid, SIGTERM);
            ::waitpid(pid, &st, 0);
            continue; // the port was taken meanwhile: another
        }
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        auto pub = fs::read_file(key.string() + ".pub").value_or("");
        auto parts = str::split(str::trim(pub), ' ');
        nlohmann::json j{{"schema", "berth.slurm-node/1"},
                         {"node", env("SLURMD_NODENAME", host)},
                         {"node_id", std::atoi(node_id.c_str())},
                         {"job", env("SLURM_JOB_ID")},
                         {"host", host},
                         {"port", port},
                         {"host_key", parts.size() >= 2 ? parts[0] + " " + parts[1] : ""}};
        if (!fs::write_file_atomic(dir / ("node" + node_id + ".json"), j.dump() + "\n", 0600))
            return say_fail("cannot write the node's address");
        if (node_id == "0") {
            std::string e =
                "# written by berth for job " + env("SLURM_JOB_ID") +
                ": source it before a distributed launcher\n"
                "export MASTER_ADDR=" +
                str::shell_quote(host) +
                "\nexport MASTER_PORT=29500\n"
                "export WORLD_SIZE=" +
                str::shell_quote(env("SLURM_JOB_NUM_NODES", "1")) +
                "\nexport BERTH_NODE_LIST=" + str::shell_quote(env("SLURM_JOB_NODELIST", host)) +
                "\nexport SLURM_JOB_ID=" + str::shell_quote(env("SLURM_JOB_ID")) + "\n";
            (void)fs::write_file_atomic(dir / "dist.env", e, 0644);
        }
        std::printf("node %s: sshd on port %d\n", node_id.c_str(), port);
        std::fflush(stdout);
        // As long as sshd lives and the job is not ended.
        while (!g_stop) {
            if (::waitpid(pid, &st, WNOHANG) == pid)
                return say_fail("the node's sshd exited; see " + (k / "sshd.log").string());
            ::usleep(200000);
        }
        ::kill(pid, SIGTERM);
        ::waitpid(pid, &st, 0);
        return 0;
    }
    return g_stop ? 0 : say_fail("the node's sshd did not start; see " + (k / "sshd.log").string());
}

} // namespace berth
