#include "engine/bootstrap.hpp"

#include "core/json_read.hpp"

#include "agent/hooks.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <cstdio>

namespace berth {

namespace {

std::vector<std::string> ssh_argv(const ssh::Target &t, const std::string &command) {
    std::vector<std::string> argv = {"ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20"};
    auto opts = ssh::options(t);
    argv.insert(argv.end(), opts.begin(), opts.end());
    argv.push_back(t.host);
    argv.push_back(command);
    return argv;
}

std::string last_line(const std::string &s) {
    auto lines = str::split(str::trim(s), '\n');
    return lines.empty() ? std::string() : str::trim(lines.back());
}

} // namespace

Result<Bootstrapped> bootstrap_over_ssh(const ssh::Target &t, const BootstrapPlan &plan,
                                        const std::function<void(const std::string &)> &progress) {
    Bootstrapped out;
    auto bin = find_static_binary();
    if (!bin) return tl::unexpected(bin.error());
    auto local_hash = sha256_file(*bin);
    if (!local_hash) return tl::unexpected(local_hash.error());
    // What is there: the architecture, and any berth already installed (a restarted machine).
    auto probe =
        proc::run(ssh_argv(t, "uname -m; for b in /usr/local/bin/berth \"$HOME/.local/bin/berth\" "
                              "\"$HOME/.berth/bin/berth\"; do "
                              "[ -x \"$b\" ] && sha256sum \"$b\"; done; true"),
                  {.input = {}, .env = {}, .timeout = std::chrono::seconds(60)});
    if (!probe) return tl::unexpected(probe.error());
    if (probe->status != 0)
        return fail("cannot run commands on the machine over SSH: " + last_line(probe->err),
                    "see `berth status`; `berth ssh NAME` to look");
    auto lines = str::split(str::trim(probe->out), '\n');
    std::string arch = lines.empty() ? "" : str::trim(lines[0]);
    if (arch != "x86_64")
        return fail("the machine is " + (arch.empty() ? std::string("of unknown type") : arch) +
                        "; berth's agent is built for x86_64",
                    "rent an x86_64 machine");
    std::string remote_path;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        auto parts = str::split(str::trim(lines[i]), ' ');
        if (parts.size() >= 2 && parts[0] == *local_hash) remote_path = parts.back();
    }
    if (remote_path.empty()) {
        auto data = fs::read_file(*bin);
        if (!data) return tl::unexpected(data.error());
        char size[32];
        std::snprintf(size, sizeof size, "%.1f MB", static_cast<double>(data->size()) / 1e6);
        progress(std::string("uploading berth's agent (static, ") + size + ")");
        // Written aside, then renamed: a cut connection never leaves half a binary in place.
        auto up = proc::run(
            ssh_argv(t, "set -e; d=/usr/local/bin; [ -w \"$d\" ] || { d=\"$HOME/.local/bin\"; "
                        "mkdir -p \"$d\"; }; cat > \"$d/.berth.up\"; chmod 755 \"$d/.berth.up\"; "
                        "mv -f \"$d/.berth.up\" \"$d/berth\"; sha256sum \"$d/berth\""),
            {.input = std::move(*data), .env = {}, .timeout = std::chrono::seconds(600)});
        if (!up) return tl::unexpected(up.error());
        auto parts = str::split(last_line(up->out), ' ');
        if (up->status != 0 || parts.size() < 2 || parts[0] != *local_hash)
            return fail("uploading berth's agent failed: " +
                            (up->status != 0 ? last_line(up->err) : "the copy does not match"),
                        "check the machine's disk space (`berth ssh NAME -- df -h`)");
        remote_path = parts.back();
        out.uploaded = true;
    }
    progress("bootstrapping: persistence, Jupyter, the idle watcher");
    auto num = [](double v) {
        char b[32];
        std::snprintf(b, sizeof b, "%.6g", v);
        return std::string(b);
    };
    // Every value here is berth's own (numbers, a URL and names it checked), quoted anyway.
    // "~/..." stays unquoted at its head: the machine's shell knows its home, the agent too.
    auto path_arg = [](const std::string &p) {
        return p.rfind("~/", 0) == 0 ? "\"$HOME\"/" + str::shell_quote(p.substr(2))
               : p == "~"            ? std::string("\"$HOME\"")
                                     : str::shell_quote(p);
    };
    std::string env =
        plan.agent_dir.empty() ? "" : "BERTH_AGENT_DIR=" + path_arg(plan.agent_dir) + " ";
    std::string cmd = env + remote_path + " agent bootstrap --workdir " + path_arg(plan.workdir) +
                      " --max-hours " + num(plan.max_hours) + " --idle-seconds " +
                      std::to_string(plan.idle_seconds) + " --cpu-percent " +
                      num(plan.thresholds.cpu_percent) + " --network-kbps " +
                      num(plan.thresholds.network_kbps) + " --gpu-percent " +
                      num(plan.thresholds.gpu_percent);
    if (!plan.api_url.empty()) cmd += " --api-url " + str::shell_quote(plan.api_url);
    if (!plan.provider.empty()) cmd += " --provider " + str::shell_quote(plan.provider);
    if (!plan.label.empty()) cmd += " --label " + str::shell_quote(plan.label);
    if (!plan.store.empty()) cmd += " --store " + path_arg(plan.store);
    if (!plan.link_home) cmd += " --no-link-home";
    auto run =
        proc::run(ssh_argv(t, cmd), {.input = {}, .env = {}, .timeout = std::chrono::seconds(180)});
    if (!run) return tl::unexpected(run.error());
    if (run->status != 0)
        return fail("the machine's bootstrap failed: " + last_line(run->err),
                    "`berth ssh NAME` and look at ~/.berth/jupyter.log");
    auto j = nlohmann::json::parse(last_line(run->out), nullptr, false);
    if (!j.is_object() || !j.contains("jupyter_port"))
        return fail("the machine's bootstrap answered something unexpected: " +
                    last_line(run->out));
    out.jupyter_port = static_cast<int>(jsonr::integer(j, "jupyter_port"));
    out.jupyter_token = jsonr::text(j, "jupyter_token", "", 128);
    if (out.jupyter_port <= 0 || out.jupyter_port > 65535 ||
        out.jupyter_token.find_first_not_of("0123456789abcdef") != std::string::npos)
        return fail(ErrorKind::malformed, "the machine's bootstrap answered a bad Jupyter port or "
                                          "token");
    out.report = j;
    return out;
}

} // namespace berth
