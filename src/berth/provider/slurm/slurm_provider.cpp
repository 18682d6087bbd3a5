#include "provider/slurm/slurm_provider.hpp"

#include "agent/hooks.hpp"
#include "core/json_read.hpp"
#include "core/paths.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

namespace berth {

namespace sh = sshhost;

namespace slurm {

namespace {

bool only(const std::string &s, const char *extra, std::size_t max) {
    if (s.empty() || s.size() > max) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && !std::strchr(extra, c)) return false;
    return true;
}

std::string opt(const Options &o, const std::string &k, const std::string &def = "") {
    auto it = o.find(k);
    return it == o.end() || it->second.empty() ? def : it->second;
}

Result<std::vector<std::string>> bad(const std::string &flag, const std::string &v,
                                     const std::string &want) {
    return fail(ErrorKind::user, "bad --" + flag + " '" + jsonr::clean_line(v, 60) + "'", want, 2);
}

} // namespace

std::map<std::string, std::string> parse_record(const std::string &line) {
    std::map<std::string, std::string> out;
    for (const auto &w : str::split(str::trim(line), ' ')) {
        auto eq = w.find('=');
        if (eq == std::string::npos || eq == 0) continue;
        out[w.substr(0, eq)] = w.substr(eq + 1);
    }
    return out;
}

MachineInfo job_state(const std::map<std::string, std::string> &job) {
    // Words from the cluster reach the user's terminal: control characters go, and they stay
    // short.
    auto get = [&](const char *k) {
        auto it = job.find(k);
        return it == job.end() ? std::string() : jsonr::clean_line(it->second, 120);
    };
    MachineInfo m;
    std::string st = get("JobState"), reason = get("Reason"), start = get("StartTime");
    if (st == "PENDING" || st == "CONFIGURING" || st == "REQUEUED" || st == "RESV_DEL_HOLD") {
        m.state = MachineState::provisioning;
        m.message = "pending: " + (reason.empty() || reason == "None"
                                       ? std::string("waiting for the scheduler")
                                       : reason);
        if (!start.empty() && start != "Unknown" && start != "N/A" && start != "None")
            m.message += " (expected start " + start + ")";
    } else if (st == "RUNNING") {
        m.state = MachineState::loading; // running once its node's sshd is known
        m.message = "running on " + get("NodeList") + "; starting berth's sshd there";
    } else if (st == "SUSPENDED" || st == "STOPPED") {
        m.state = MachineState::stopped;
        m.message = "suspended by Slurm";
    } else if (st.empty()) {
        m.state = MachineState::gone;
        m.message = "the job is no longer known to Slurm";
    } else {
        // COMPLETING, COMPLETED, TIMEOUT, CANCELLED, FAILED, NODE_FAIL, PREEMPTED, ...
        m.state = MachineState::gone;
        std::string why = st == "TIMEOUT"     ? "its time limit (" + get("TimeLimit") + ") ran out"
                          : st == "CANCELLED" ? "it was cancelled (scancel)"
                          : st == "PREEMPTED" ? "it was preempted"
                          : st == "NODE_FAIL" ? "its node failed"
                          : st == "OUT_OF_MEMORY" ? "it ran out of memory"
                          : st == "COMPLETING"    ? "it is ending"
                                                  : st;
        m.message = "the job ended: " + why;
    }
    return m;
}

std::vector<Offer> parse_sinfo(const std::string &out, const std::string &login) {
    struct Part {
        int nodes = 0, idle = 0, cpus = 0;
        double mem_mb = 0;
        std::string limit, gres;
        bool up = true;
    };
    std::map<std::string, Part> parts;
    std::vector<std::string> order;
    for (const auto &line : str::split(out, '\n')) {
        auto c = str::split(str::trim(line), '|');
        if (c.size() < 8) continue;
        std::string name = c[0];
        if (!name.empty() && name.back() == '*') name.pop_back();
        if (!only(name, "_.-", 64)) continue;
        if (!parts.count(name)) order.push_back(name);
        auto &p = parts[name];
        int n = std::atoi(c[3].c_str());
        p.nodes += n;
        if (c[4].rfind("idle", 0) == 0) p.idle += n;
        p.up = c[1] == "up";
        p.limit = c[2].substr(0, 20);
        if (c[5] != "(null)") p.gres = c[5].substr(0, 80);
        p.cpus = std::max(p.cpus, std::atoi(c[6].c_str()));
        p.mem_mb = std::max(p.mem_mb, std::atof(c[7].c_str()));
    }
    std::vector<Offer> offers;
    for (const auto &name : order) {
        const auto &p = parts[name];
        if (!p.up) continue;
        Offer o;
        o.provider = "slurm";
        o.id = name;
        o.gpu_name = "none";
        // gres "gpu:a100:4(S:0-1)" or "gpu:4": the first GPU entry.
        for (const auto &g : str::split(p.gres, ',')) {
            auto f = str::split(g.substr(0, g.find('(')), ':');
            if (f.empty() || f[0] != "gpu") continue;
            o.gpu_count = f.size() >= 2 ? std::atoi(f.back().c_str()) : 1;
            o.gpu_name = f.size() >= 3 ? f[1] : "gpu";
            break;
        }
        o.reliability = 1.0;
        o.location = login + " " + name;
        o.raw = {{"partition", name},     {"nodes", p.nodes},    {"idle_nodes", p.idle},
                 {"time_limit", p.limit}, {"cpu_cores", p.cpus}, {"cpu_ram", p.mem_mb}};
        offers.push_back(std::move(o));
    }
    return offers;
}

Result<std::vector<std::string>> sbatch_args(const Options &o, double max_hours) {
    std::vector<std::string> a;
    if (auto v = opt(o, "partition"); !v.empty()) {
        if (!only(v, "_.-", 64)) return bad("partition", v, "letters, digits, . _ -");
        a.push_back("--partition=" + v);
    }
    if (auto v = opt(o, "gres"); !v.empty()) {
        if (!only(v, "_.:,-", 128)) return bad("gres", v, "as Slurm spells it: gpu:1, gpu:a100:2");
        a.push_back("--gres=" + v);
    }
    if (auto v = opt(o, "time"); !v.empty()) {
        if (!only(v, ":-", 20) || v.find_first_not_of("0123456789:-") != std::string::npos)
            return bad("time", v, "minutes, H:MM:SS or D-HH:MM:SS");
        a.push_back("--time=" + v);
    } else if (max_hours > 0) {
        a.push_back("--time=" + std::to_string(static_cast<long>(std::ceil(max_hours * 60))));
    }
    if (auto v = opt(o, "cpus"); !v.empty()) {
        if (v.find_first_not_of("0123456789") != std::string::npos || v.size() > 4 ||
            std::atoi(v.c_str()) < 1)
            return bad("cpus", v, "a number of CPUs, 1 or more");
        a.push_back("--cpus-per-task=" + v);
    }
    if (auto v = opt(o, "mem"); !v.empty()) {
        std::string digits = v;
        if (!digits.empty() && std::strchr("KMGT", digits.back())) digits.pop_back();
        if (digits.empty() || digits.size() > 9 ||
            digits.find_first_not_of("0123456789") != std::string::npos)
            return bad("mem", v, "a size: 32G, 4000M");
        a.push_back("--mem=" + v);
    }
    std::string nodes = opt(o, "nodes", "1");
    if (nodes.find_first_not_of("0123456789") != std::string::npos || nodes.size() > 3 ||
        std::atoi(nodes.c_str()) < 1 || std::atoi(nodes.c_str()) > 256)
        return bad("nodes", nodes, "1 to 256");
    a.push_back("--nodes=" + nodes);
    a.push_back("--ntasks-per-node=1");
    if (auto v = opt(o, "account"); !v.empty()) {
        if (!only(v, "_.-", 64)) return bad("account", v, "letters, digits, . _ -");
        a.push_back("--account=" + v);
    }
    return a;
}

} // namespace slurm

namespace {

std::string opt(const Options &o, const std::string &k, const std::string &def = "") {
    auto it = o.find(k);
    return it == o.end() || it->second.empty() ? def : it->second;
}

// JOBID@NAME@LOGIN
struct JobId {
    std::string job, name;
    sh::Dest login;
};

Result<JobId> parse_job_id(const std::string &id) {
    auto a = id.find('@');
    auto b = a == std::string::npos ? a : id.find('@', a + 1);
    if (b == std::string::npos)
        return fail(ErrorKind::user, "bad slurm machine id '" + jsonr::clean_line(id, 80) + "'");
    JobId j;
    j.job = id.substr(0, a);
    j.name = id.substr(a + 1, b - a - 1);
    if (j.job.empty() || j.job.size() > 12 ||
        j.job.find_first_not_of("0123456789") != std::string::npos || j.name.empty() ||
        j.name.size() > 40 ||
        j.name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
        return fail(ErrorKind::user, "bad slurm machine id '" + jsonr::clean_line(id, 80) + "'");
    auto d = sh::parse_dest(id.substr(b + 1));
    if (!d) return tl::unexpected(d.error());
    j.login = *d;
    return j;
}

std::string machine_dir() {
    return "D=\"$HOME/.berth/machines/$2\"\n";
}

// Puts berth's static agent at ~/.berth/bin/berth on the cluster (verified by its hash,
// replaced only when different; written aside, then renamed).
Result<> install_agent(const sh::Dest &d) {
    auto bin = find_static_binary();
    if (!bin) return tl::unexpected(bin.error());
    auto hash = sha256_file(*bin);
    if (!hash) return tl::unexpected(hash.error());
    auto have = sh::run_command(d, "sha256sum \"$HOME/.berth/bin/berth\" 2>/dev/null; true", "",
                                std::chrono::seconds(60));
    if (!have) return tl::unexpected(have.error());
    if (str::split(str::trim(*have), ' ').front() == *hash) return {};
    auto data = fs::read_file(*bin);
    if (!data) return tl::unexpected(data.error());
    auto up = sh::run_command(
        d,
        "set -e; d=\"$HOME/.berth/bin\"; mkdir -p \"$d\"; cat > \"$d/.berth.up\"; chmod 755 "
        "\"$d/.berth.up\"; mv -f \"$d/.berth.up\" \"$d/berth\"; sha256sum \"$d/berth\"",
        *data, std::chrono::seconds(600));
    if (!up) return tl::unexpected(up.error());
    if (str::split(str::trim(*up), ' ').front() != *hash)
        return fail("copying berth's agent to " + d.text + " did not verify",
                    "check the disk space in your home on the cluster");
    return {};
}

} // namespace

SlurmProvider::SlurmProvider(Options opt) : m_opt(std::move(opt)) {}

Capabilities slurm_capabilities() {
    Capabilities c;
    c.billed = false;
    c.can_stop = false;
    c.stop_keeps_disk = false;
    c.bootstrap_over_ssh = true;
    c.lists_machines = true;
    c.filters_offers = false;
    c.workdir = "~";
    c.destroy_loses = {};
    c.self_stop = "api";
    c.poll_interval = std::chrono::milliseconds(1000);
    c.storage_note = "your home on the cluster: the work directory (default ~/berth/NAME) and "
                     "the store (default ~/.berth/storage) stay for the next job";
    c.stop_note = "a Slurm job cannot be suspended and resumed";
    c.destroy_note = "the job is cancelled (scancel); your files on the cluster stay";
    return c;
}

Capabilities SlurmProvider::capabilities() const {
    return slurm_capabilities();
}

Result<sh::Dest> SlurmProvider::login() const {
    std::string host = opt(m_opt, "host");
    if (host.empty())
        return fail(ErrorKind::user, "which cluster? --host is needed",
                    "--host LOGIN (an alias of your ~/.ssh/config, or [user@]host[:port]); "
                    "`berth config set provider.slurm.host LOGIN` for a default",
                    2);
    return sh::parse_dest(host);
}

Result<std::vector<Offer>> SlurmProvider::offers(const nlohmann::json &) {
    auto d = login();
    if (!d) return tl::unexpected(d.error());
    auto out =
        sh::run_command(*d, "sinfo -h -o '%P|%a|%l|%D|%T|%G|%c|%m'", "", std::chrono::seconds(60));
    if (!out) return tl::unexpected(out.error());
    return slurm::parse_sinfo(*out, d->text);
}

Result<UpPlan> SlurmProvider::plan(InstanceSpec spec, const Options &o) {
    Options all = m_opt;
    for (const auto &[k, v] : o)
        all[k] = v;
    m_opt = all;
    auto d = login();
    if (!d) return tl::unexpected(d.error());
    auto args = slurm::sbatch_args(all, spec.max_hours);
    if (!args) return tl::unexpected(args.error());
    auto p = sh::probe(*d);
    if (!p) return tl::unexpected(p.error());
    auto has = sh::run_command(*d, "command -v sbatch >/dev/null && command -v squeue >/dev/null",
                               "", std::chrono::seconds(30));
    if (!has)
        return fail(ErrorKind::refused, "no Slurm on " + d->text + " (sbatch or squeue missing)",
                    "give the cluster's login node as --host", 1);
    auto expand = [&](const std::string &v) -> Result<std::string> {
        std::string e = v == "~" ? p->home : v.rfind("~/", 0) == 0 ? p->home + v.substr(1) : v;
        if (e.empty() || e[0] != '/' || str::contains(e, "..") ||
            e.find_first_of("\n\r\t") != std::string::npos)
            return fail(ErrorKind::user, "bad path '" + jsonr::clean_line(v, 80) + "'",
                        "an absolute path on the cluster, or one under ~/", 2);
        return e;
    };
    auto workdir = expand(opt(all, "workdir", "~/berth/" + spec.name));
    if (!workdir) return tl::unexpected(workdir.error());
    auto store = expand(opt(all, "store", "~/.berth/storage"));
    if (!store) return tl::unexpected(store.error());
    spec.offer_id = d->text;
    spec.ssh_jump = d->text;
    spec.agent_dir = p->home + "/.berth/machines/" + spec.name;
    spec.host_workdir = *workdir;
    spec.host_store = *store;
    spec.host_link_home = false;
    // gpus-per-node: `account`'s GPU-hours where sacct has no TRES (no slurmdbd).
    spec.remember = {{"host", d->text},
                     {"nodes", opt(all, "nodes", "1")},
                     {"machine-store", *store},
                     {"gpus-per-node", std::to_string(slurm::gpus_of_gres(opt(all, "gres")))}};
    std::string flags;
    for (const auto &a : *args)
        flags += " " + a;
    UpPlan plan{std::move(spec), {}, {}};
    plan.notes.push_back("cluster " + d->text + ": job berth-" + plan.spec.name + " with" + flags);
    plan.notes.push_back("work directory " + *workdir + ", store " + *store +
                         " (your home on the cluster)");
    return plan;
}

Result<MachineInfo> SlurmProvider::create(const InstanceSpec &spec) {
    auto d = sh::parse_dest(spec.offer_id);
    if (!d) return tl::unexpected(d.error());
    auto args = slurm::sbatch_args(m_opt, spec.max_hours);
    if (!args) return tl::unexpected(args.error());
    for (const auto &k : str::split(spec.authorized_keys, '\n'))
        if (k.find_first_of("'\\") != std::string::npos)
            return fail("a public key holds a bad line");
    BERTH_TRY(install_agent(*d));
    int nodes = 1;
    for (const auto &a : *args)
        if (a.rfind("--nodes=", 0) == 0) nodes = std::atoi(a.substr(8).c_str());
    std::string run = "\"$HOME/.berth/bin/berth\" agent slurm-node --dir \"$HOME/.berth/machines/" +
                      spec.name + "\"";
    std::string job = "#!/bin/sh\n# berth machine " + spec.name +
                      ": berth's agent on each node (agent/slurm_node.hpp)\nexec " +
                      (nodes > 1 ? "srun --ntasks-per-node=1 --kill-on-bad-exit=1 " : "") + run +
                      "\n";
    std::string sbatch =
        "sbatch --parsable --job-name=berth-" + spec.name + " --output=\"$D/job-%j.out\"";
    for (const auto &a : *args)
        sbatch += " " + str::shell_quote(a);
    std::string script = machine_dir() + R"SH(
if [ -f "$D/job" ] && squeue -h -j "$(cat "$D/job")" 2>/dev/null | grep -q .; then
  echo "a berth machine '$2' already runs on this cluster (job $(cat "$D/job"))" >&2; exit 4
fi
umask 077
mkdir -p "$D" && rm -f "$D"/node*.json "$D/dist.env"
printf '%s\n' )SH" + str::shell_quote(spec.host_store) +
                         R"SH( > "$D/store"
printf '%s\n' )SH" + str::shell_quote(spec.host_workdir) +
                         R"SH( > "$D/workdir"
printf '%s' )SH" + str::shell_quote(spec.authorized_keys) +
                         R"SH( > "$D/authorized_keys"
printf '%s' )SH" + str::shell_quote(job) +
                         R"SH( > "$D/job.sh" && chmod 700 "$D/job.sh"
S=)SH" + str::shell_quote(spec.host_store) +
                         R"SH(
if [ ! -e "$S" ] || [ -z "$(ls -A "$S" 2>/dev/null)" ]; then mkdir -p "$S" && printf 'a berth store\n' > "$S/.berth-store"; fi
umask 022
mkdir -p )SH" + str::shell_quote(spec.host_workdir) +
                         " \"$S\"\nid=$(" + sbatch +
                         R"SH( "$D/job.sh") || exit 5
id=${id%%;*}
printf '%s\n' "$id" > "$D/job"
echo "$id"
)SH";
    auto out = sh::run_on(*d, script, "0 " + spec.name, std::chrono::seconds(120));
    if (!out) {
        if (str::contains(out.error().what, "already runs"))
            return fail(ErrorKind::refused, out.error().what,
                        "`berth ls --reconcile --provider slurm` finds it; or pick another name",
                        1);
        return fail(out.error().kind, "sbatch refused the job: " + out.error().what,
                    "check the options against `berth offers --provider slurm`");
    }
    std::string id = str::trim(*out);
    if (id.empty() || id.size() > 12 || id.find_first_not_of("0123456789") != std::string::npos)
        return fail(ErrorKind::malformed,
                    "sbatch answered '" + jsonr::clean_line(id, 60) + "', not a job id",
                    "`berth ls --reconcile --provider slurm` finds the job if it was made");
    MachineInfo m;
    m.id = id + "@" + spec.name + "@" + d->text;
    m.state = MachineState::provisioning;
    m.message = "submitted job " + id;
    m.label = berth_label(spec.name);
    return m;
}

Result<MachineInfo> SlurmProvider::describe(const std::string &id) {
    auto j = parse_job_id(id);
    if (!j) return tl::unexpected(j.error());
    std::string script = machine_dir() + R"SH(
scontrol show job -o "$1" 2>/dev/null | head -1
echo ---
tr -d '\n' < "$D/node0.json" 2>/dev/null; echo
echo ---
n=$(scontrol show job -o "$1" 2>/dev/null | head -1 | sed -n 's/.* NodeList=\([^ ]*\).*/\1/p')
[ -n "$n" ] && [ "$n" != "(null)" ] && scontrol show node -o "$(scontrol show hostnames "$n" | head -1)" 2>/dev/null | head -1
true
)SH";
    auto out = sh::run_on(j->login, script, j->job + " " + j->name, std::chrono::seconds(60));
    if (!out) return tl::unexpected(out.error());
    auto parts = str::split(*out + "\n", '\n');
    std::vector<std::string> sections(3);
    std::size_t s = 0;
    for (const auto &line : parts) {
        if (str::trim(line) == "---") {
            if (s < 2) ++s;
            continue;
        }
        sections[s] += line + "\n";
    }
    auto job = slurm::parse_record(sections[0]);
    if (!job.empty() && job["JobId"] != j->job)
        return fail(ErrorKind::malformed, "Slurm answered about another job than " + j->job);
    auto m = slurm::job_state(job);
    m.id = id;
    m.label = berth_label(j->name);
    if (job.count("JobName") && job["JobName"] != "berth-" + j->name)
        return fail(ErrorKind::malformed, "job " + j->job + " is not berth's '" + j->name + "' (" +
                                              jsonr::clean_line(job["JobName"], 40) + ")");
    if (job.count("SubmitTime")) {
        // The time fields are the cluster's local time; the ledger bills nothing here.
    }
    if (job["JobState"] == "RUNNING") {
        auto node = nlohmann::json::parse(str::trim(sections[1]), nullptr, false);
        if (node.is_object() && jsonr::text(node, "job", "", 20) == j->job) {
            auto nrec = slurm::parse_record(sections[2]);
            std::string addr = nrec.count("NodeAddr") ? nrec["NodeAddr"] : "";
            if (addr.empty()) addr = jsonr::text(node, "host", "", 253);
            int port = static_cast<int>(jsonr::integer(node, "port"));
            std::string key = jsonr::text(node, "host_key", "", 200);
            bool ok = port > 0 && port < 65536 && key.rfind("ssh-ed25519 ", 0) == 0 &&
                      !addr.empty() &&
                      addr.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                             "0123456789.-:") == std::string::npos;
            if (ok) {
                m.state = MachineState::running;
                m.message = "running on " + jsonr::text(node, "node", "", 64);
                m.ssh.host = addr;
                m.ssh.port = port;
                m.ssh.user = sh::resolve(j->login).user;
                m.ssh.host_key = key;
            }
        }
    }
    return m;
}

Result<SshEndpoint> SlurmProvider::node(const std::string &id, int k) {
    auto j = parse_job_id(id);
    if (!j) return tl::unexpected(j.error());
    if (k < 0 || k > 255)
        return fail(ErrorKind::user, "bad node number " + std::to_string(k), "", 2);
    std::string script = machine_dir() + "k=" + std::to_string(k) + R"SH(
n=$(scontrol show job -o "$1" 2>/dev/null | head -1 | sed -n 's/.* NodeList=\([^ ]*\).*/\1/p')
tr -d '\n' < "$D/node$k.json" 2>/dev/null || exit 3
echo
h=$(scontrol show hostnames "$n" 2>/dev/null | sed -n "$((k+1))p")
[ -n "$h" ] && scontrol show node -o "$h" 2>/dev/null | head -1
true
)SH";
    auto out = sh::run_on(j->login, script, j->job + " " + j->name, std::chrono::seconds(60));
    if (!out && out.error().kind == ErrorKind::not_found)
        return fail(ErrorKind::user,
                    "'" + j->name + "' has no node " + std::to_string(k) + " (yet)",
                    "see `berth status " + j->name + "`", 2);
    if (!out) return tl::unexpected(out.error());
    auto lines = str::split(*out, '\n');
    auto node = nlohmann::json::parse(lines.empty() ? "" : lines[0], nullptr, false);
    if (!node.is_object() || jsonr::text(node, "job", "", 20) != j->job)
        return fail(ErrorKind::user,
                    "node " + std::to_string(k) + " of '" + j->name + "' is not up yet", "", 1);
    auto rec = slurm::parse_record(lines.size() > 1 ? lines[1] : "");
    SshEndpoint e;
    e.host = rec.count("NodeAddr") ? rec["NodeAddr"] : jsonr::text(node, "host", "", 253);
    e.port = static_cast<int>(jsonr::integer(node, "port"));
    e.user = sh::resolve(j->login).user;
    e.host_key = jsonr::text(node, "host_key", "", 200);
    if (e.port <= 0 || e.port > 65535 || e.host_key.rfind("ssh-ed25519 ", 0) != 0 ||
        e.host.empty() ||
        e.host.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") !=
            std::string::npos)
        return fail(ErrorKind::malformed,
                    "node " + std::to_string(k) + " of '" + j->name + "' wrote a bad address");
    return e;
}

Result<> SlurmProvider::stop(const std::string &) {
    return fail(ErrorKind::user, "a Slurm job cannot be stopped and resumed",
                "`berth destroy` ends it; a new `berth up` finds your store", 2);
}

Result<> SlurmProvider::start(const std::string &id) {
    return stop(id);
}

Result<> SlurmProvider::destroy(const std::string &id) {
    auto j = parse_job_id(id);
    if (!j) return tl::unexpected(j.error());
    // scancel, then wait until Slurm no longer runs it; then berth's directory for it goes
    // (the work directory and the store are the user's and stay).
    std::string script = machine_dir() + R"SH(
scancel "$1" 2>/dev/null
i=0
while [ $i -lt 120 ]; do
  st=$(squeue -h -j "$1" -o %T 2>/dev/null)
  [ -z "$st" ] && break
  i=$((i+1)); sleep 0.5
done
[ -n "$st" ] && { echo "job $1 is still $st" >&2; exit 6; }
if [ -d "$D" ] && [ "$(cat "$D/job" 2>/dev/null)" = "$1" ]; then rm -rf -- "$D"; fi
exit 0
)SH";
    auto out = sh::run_on(j->login, script, j->job + " " + j->name, std::chrono::seconds(90));
    if (!out) return tl::unexpected(out.error());
    return {};
}

Result<> SlurmProvider::attach_key(const std::string &id, const std::string &public_key) {
    auto j = parse_job_id(id);
    if (!j) return tl::unexpected(j.error());
    if (public_key.rfind("ssh-", 0) != 0 || public_key.find_first_of("\r\n'") != std::string::npos)
        return fail(ErrorKind::user, "not an SSH public key");
    // The node's sshd reads this file on each login: the key works at once, for this job only.
    auto out = sh::run_on(j->login,
                          machine_dir() +
                              "[ \"$(cat \"$D/job\" 2>/dev/null)\" = \"$1\" ] || exit 3\n"
                              "umask 077\nprintf '%s\\n' " +
                              str::shell_quote(public_key) +
                              " > \"$D/authorized_keys.new\" && mv -f \"$D/authorized_keys.new\" "
                              "\"$D/authorized_keys\"\n",
                          j->job + " " + j->name, std::chrono::seconds(30));
    if (!out) return tl::unexpected(out.error());
    return {};
}

Result<std::string> SlurmProvider::purge_store(const std::string &id, bool check_only) {
    auto j = parse_job_id(id);
    if (!j) return tl::unexpected(j.error());
    return sh::purge_store(j->login, j->name, opt(m_opt, "machine-store"), check_only);
}

int slurm::gpus_of_gres(const std::string &gres) {
    int n = 0;
    for (const auto &g : str::split(gres, ',')) {
        auto parts = str::split(str::trim(g), ':');
        if (parts.empty() || parts[0] != "gpu") continue;
        const std::string &last = parts.back();
        bool count = parts.size() > 1 && !last.empty() && last.size() <= 4 &&
                     last.find_first_not_of("0123456789") == std::string::npos;
        n += count ? std::atoi(last.c_str()) : 1;
    }
    return n;
}

int slurm::gpus_of_tres(const std::string &tres) {
    int untyped = -1, typed = 0;
    for (const auto &kv : str::split(tres, ',')) {
        auto eq = kv.find('=');
        if (eq == std::string::npos) continue;
        std::string k = str::trim(kv.substr(0, eq)), v = str::trim(kv.substr(eq + 1));
        if (v.empty() || v.size() > 6 || v.find_first_not_of("0123456789") != std::string::npos)
            continue;
        int n = std::atoi(v.c_str());
        if (k == "gres/gpu")
            untyped = n;
        else if (k.rfind("gres/gpu:", 0) == 0)
            typed += n;
    }
    return untyped >= 0 ? untyped : typed;
}

std::vector<Provider::UsageLine> slurm::parse_sacct(const std::string &out) {
    std::vector<Provider::UsageLine> rows;
    auto num = [](const std::string &v, double &to) {
        if (v.empty() || v.size() > 12 || v.find_first_not_of("0123456789") != std::string::npos)
            return; // "Unknown", "None": not yet
        to = std::atof(v.c_str());
    };
    for (const auto &line : str::split(out, '\n')) {
        auto f = str::split(str::trim(line), '|');
        if (f.size() < 8) continue;
        const std::string &job = f[0], &name = f[1];
        if (job.empty() || job.size() > 12 ||
            job.find_first_not_of("0123456789") != std::string::npos)
            continue; // steps (123.batch), arrays and heterogeneous parts are not machines
        if (name.rfind("berth-", 0) != 0 || name.size() > 46) continue;
        std::string n = name.substr(6);
        if (n.empty() ||
            n.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
            continue;
        Provider::UsageLine u;
        u.name = n;
        u.id = job;
        u.state = jsonr::clean_line(str::split(f[2], ' ')[0], 24);
        num(f[3], u.start);
        num(f[4], u.end);
        double v = 0;
        num(f[5], v);
        u.nodes = static_cast<int>(v);
        v = 0;
        num(f[6], v);
        u.cpus = static_cast<int>(v);
        u.gpus = slurm::gpus_of_tres(f[7]);
        rows.push_back(std::move(u));
    }
    return rows;
}

Result<std::optional<Provider::Usage>> SlurmProvider::usage(int days) {
    auto d = login();
    if (!d) return tl::unexpected(d.error());
    // The accounting database when the cluster has one, else the job completion log.
    std::string script = "export SLURM_TIME_FORMAT=%s\n"
                         "F=JobID,JobName,State,Start,End,NNodes,AllocCPUS,AllocTRES\n"
                         "S=now-" +
                         std::to_string(std::max(1, days)) + R"SH(days
if out=$(sacct -X -P -n -u "$(id -un)" -S "$S" -o "$F" 2>&1); then echo sacct; printf '%s\n' "$out"; exit 0; fi
if out2=$(sacct --completion -X -P -n -u "$(id -un)" -S "$S" -o "$F" 2>&1); then echo "sacct --completion"; printf '%s\n' "$out2"; exit 0; fi
printf '%s\n' "$out" | head -1 >&2; exit 7
)SH";
    auto out = sh::run_on(*d, script, "", std::chrono::seconds(60));
    if (!out)
        return fail(ErrorKind::refused,
                    "no accounting from " + d->text + ": " +
                        jsonr::clean_line(out.error().what, 200),
                    "the cluster keeps no accounting (sacct) nor a job completion log");
    auto nl = out->find('\n');
    Usage u;
    u.source = str::trim(out->substr(0, nl));
    u.lines = slurm::parse_sacct(nl == std::string::npos ? "" : out->substr(nl + 1));
    return std::optional<Usage>(std::move(u));
}

Result<std::vector<MachineInfo>> SlurmProvider::list() {
    auto d = login();
    if (!d) return tl::unexpected(d.error());
    // Each berth job with its machine's directories, as its `up` wrote them (for reconcile).
    auto out = sh::run_on(*d, R"SH(echo "HOME|$HOME"
squeue -h -u "$(id -un)" -o '%i|%j|%T|%r' | while IFS='|' read -r i j t r; do
  n=${j#berth-}; w=; s=
  case "$n" in ''|*[!a-z0-9-]*) ;; *) D="$HOME/.berth/machines/$n"
    w=$(head -1 "$D/workdir" 2>/dev/null); s=$(head -1 "$D/store" 2>/dev/null) ;; esac
  printf '%s|%s|%s|%s|%s|%s
' "$i" "$j" "$t" "$r" "$w" "$s"
done
)SH",
                          "", std::chrono::seconds(60));
    if (!out) return tl::unexpected(out.error());
    std::vector<MachineInfo> ms;
    std::string home;
    auto path_ok = [](const std::string &p) {
        return !p.empty() && p[0] == '/' && p.size() < 1024 && !str::contains(p, "..") &&
               p.find_first_of("\r\n\t") == std::string::npos;
    };
    for (const auto &line : str::split(*out, '\n')) {
        auto c = str::split(str::trim(line), '|');
        if (c.size() == 2 && c[0] == "HOME" && path_ok(c[1])) home = c[1];
        if (c.size() < 4 || c[1].rfind("berth-", 0) != 0) continue;
        std::string name = c[1].substr(6);
        auto id = c[0] + "@" + name + "@" + d->text;
        if (!parse_job_id(id)) continue;
        auto m = slurm::job_state({{"JobState", c[2]}, {"Reason", c[3]}});
        m.id = id;
        m.label = berth_label(name);
        if (!home.empty()) {
            std::string w = c.size() > 4 && path_ok(c[4]) ? c[4] : home + "/berth/" + name;
            std::string st = c.size() > 5 && path_ok(c[5]) ? c[5] : home + "/.berth/storage";
            m.spec_hint = nlohmann::json{{"host",
                                          {{"user_ssh", false},
                                           {"jump", d->text},
                                           {"agent_dir", home + "/.berth/machines/" + name},
                                           {"workdir", w},
                                           {"store", st},
                                           {"link_home", false}}},
                                         {"options", {{"host", d->text}, {"machine-store", st}}}}
                              .dump();
        }
        ms.push_back(std::move(m));
    }
    return ms;
}

ProviderRow slurm_provider_row() {
    ProviderRow row;
    row.name = "slurm";
    row.summary = "jobs on a Slurm cluster, through its login node with your own ssh";
    row.capabilities = slurm_capabilities();
    row.options = {
        {"host", "the login node: an alias of your ~/.ssh/config or [user@]host[:port]", "", false,
         true, true},
        {"partition", "the partition (default: the cluster's)", ""},
        {"gres", "generic resources, as Slurm spells them (gpu:1)", ""},
        {"time", "the job's time limit (default: --max-hours, else the partition's)", ""},
        {"cpus", "CPUs for the job", ""},
        {"mem", "memory for the job (32G)", ""},
        {"nodes", "nodes in the one allocation", "1"},
        {"account", "the Slurm account to charge", ""},
        {"workdir", "where Jupyter is rooted on the cluster", "~/berth/NAME"},
        {"store", "the persistent store on the cluster's shared file system", "~/.berth/storage"},
        {"gpu-hour-rate", "dollars per GPU-hour, for `berth account` (the cluster's own rate)", ""},
        {"machine-store", "", "", false, false, false, true},
        {"gpus-per-node", "", "", false, false, false, true},
    };
    row.make = [](const ProviderContext &ctx) -> Result<std::unique_ptr<Provider>> {
        return std::unique_ptr<Provider>(new SlurmProvider(ctx.options));
    };
    // On the node, when the machine's watcher decides: the job ends (scancel).
    row.self_stop = [](const std::string &, const std::string &, const std::string &) -> Result<> {
        auto id = fs::read_file(paths::agent_dir() / "job");
        if (!id) return fail("no job id in " + (paths::agent_dir() / "job").string());
        std::string job = str::trim(*id);
        if (job.empty() || job.find_first_not_of("0123456789") != std::string::npos)
            return fail("a bad job id in " + (paths::agent_dir() / "job").string());
        auto r = proc::run({"scancel", job},
                           {.input = {}, .env = {}, .timeout = std::chrono::seconds(30)});
        if (!r) return tl::unexpected(r.error());
        if (r->status != 0) return fail("scancel failed: " + str::trim(r->err));
        return {};
    };
    return row;
}

} // namespace berth
