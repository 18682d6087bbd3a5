#include "provider/ssh/host_provider.hpp"

#include "core/paths.hpp"
#include "remote/ssh.hpp"
#include "util/hash.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace berth {

namespace sshhost {

namespace {

bool host_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
}

bool valid_name(const std::string &n) {
    if (n.empty() || n.size() > 40 || !std::isalnum(static_cast<unsigned char>(n[0]))) return false;
    for (char c : n)
        if (!(std::islower(static_cast<unsigned char>(c)) ||
              std::isdigit(static_cast<unsigned char>(c)) || c == '-'))
            return false;
    return true;
}

} // namespace

Result<Dest> parse_dest(const std::string &s) {
    auto bad = [&](const std::string &why) -> Result<Dest> {
        return fail(ErrorKind::user, "bad host '" + str::trim(s.substr(0, 80)) + "': " + why,
                    "give [user@]host[:port] or an alias of your ~/.ssh/config", 2);
    };
    Dest d;
    d.text = s;
    std::string rest = s;
    if (rest.empty()) return bad("it is empty");
    if (rest.size() > 200) return bad("it is too long");
    if (auto at = rest.find('@'); at != std::string::npos) {
        d.user = rest.substr(0, at);
        rest = rest.substr(at + 1);
        if (d.user.empty()) return bad("the user is empty");
        for (char c : d.user)
            if (!host_char(c)) return bad("the user has a character ssh would not take");
    }
    if (auto colon = rest.rfind(':'); colon != std::string::npos) {
        std::string port = rest.substr(colon + 1);
        rest = rest.substr(0, colon);
        if (port.empty() || port.size() > 5 ||
            port.find_first_not_of("0123456789") != std::string::npos)
            return bad("the port is not a number");
        d.port = std::atoi(port.c_str());
        if (d.port < 1 || d.port > 65535) return bad("the port is out of range");
    }
    if (rest.empty() || rest[0] == '-') return bad("no host name");
    for (char c : rest)
        if (!host_char(c)) return bad("the host has a character ssh would not take");
    d.host = rest;
    return d;
}

Result<Probe> parse_probe(const std::string &out) {
    Probe p;
    for (const auto &raw : str::split(out, '\n')) {
        std::string line = str::trim(raw);
        auto sp = line.find(' ');
        if (sp == std::string::npos) continue;
        std::string key = line.substr(0, sp), v = str::trim(line.substr(sp + 1));
        if (key == "arch")
            p.arch = v.substr(0, 32);
        else if (key == "home")
            p.home = v;
        else if (key == "cpus")
            p.cpus = std::atoi(v.c_str());
        else if (key == "mem")
            p.ram_gb = std::atof(v.c_str()) / (1024.0 * 1024.0); // kB
        else if (key == "free")
            p.free_gb = std::atof(v.c_str()) / (1024.0 * 1024.0); // 1K blocks
        else if (key == "gpu") {
            auto cols = str::split(v, ',');
            if (cols.size() < 2) continue;
            std::string name = str::trim(cols[0]).substr(0, 80);
            double mib = std::atof(str::trim(cols[1]).c_str());
            if (!name.empty()) p.gpus.emplace_back(name, mib / 1024.0);
        }
    }
    if (p.arch.empty() || p.home.empty())
        return fail(ErrorKind::malformed, "the host's answer to berth's probe is incomplete",
                    "check that the host runs a POSIX shell");
    if (p.home[0] != '/' || p.home.find_first_of("\"'`$\\\n") != std::string::npos ||
        str::contains(p.home, ".."))
        return fail(ErrorKind::malformed,
                    "the host's home '" + p.home.substr(0, 80) + "' is not a plain absolute path");
    return p;
}

std::string machine_id(const std::string &name, const std::string &dest) {
    return name + "@" + dest;
}

Result<std::pair<std::string, Dest>> parse_id(const std::string &id) {
    auto at = id.find('@');
    if (at == std::string::npos || !valid_name(id.substr(0, at)))
        return fail(ErrorKind::user, "bad ssh machine id '" + id.substr(0, 80) + "'");
    auto d = parse_dest(id.substr(at + 1));
    if (!d) return tl::unexpected(d.error());
    return std::make_pair(id.substr(0, at), *d);
}

} // namespace sshhost

namespace sh = sshhost;

namespace {

// The probe: what berth needs to know of a host before it puts anything there.
const char *probe_script = R"SH(echo "arch $(uname -m)"
echo "home $HOME"
echo "cpus $(nproc 2>/dev/null || echo 0)"
echo "mem $(awk '/^MemTotal:/ {print $2}' /proc/meminfo 2>/dev/null)"
echo "free $(df -Pk "$HOME" 2>/dev/null | awk 'NR==2 {print $4}')"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader,nounits 2>/dev/null | sed 's/^/gpu /'
fi
)SH";

std::string agent_dir_expr() {
    return "D=\"$HOME/.berth/machines/$1\"\n";
}

std::string expand(const std::string &p, const std::string &home) {
    if (p == "~") return home;
    if (p.rfind("~/", 0) == 0) return home + "/" + p.substr(2);
    return p;
}

Result<std::string> path_on_host(const std::string &what, const std::string &p,
                                 const std::string &home) {
    std::string e = expand(p, home);
    if (e.empty() || e[0] != '/' || str::contains(e, "/../") || e.size() > 1024 ||
        e.find_first_of("\n\r\t") != std::string::npos ||
        (e.size() >= 3 && e.substr(e.size() - 3) == "/.."))
        return fail(ErrorKind::user, "bad " + what + " '" + p.substr(0, 80) + "'",
                    "give an absolute path on the host, or one under ~/", 2);
    while (e.size() > 1 && e.back() == '/')
        e.pop_back();
    return e;
}

std::string opt(const Options &o, const std::string &k, const std::string &def = "") {
    auto it = o.find(k);
    return it == o.end() || it->second.empty() ? def : it->second;
}

} // namespace

std::string ssh_host_stop_script() {
    return R"SH([ -d "$D" ] || exit 3
printf 'stopped\n' > "$D/state.new" && mv -f "$D/state.new" "$D/state"
alive=""; left=""
pids=$(cat "$D/watch.pid" 2>/dev/null; sed -n 's/.*"pid":\([0-9][0-9]*\).*/\1/p' "$D/jupyter.json" 2>/dev/null)
for p in $pids; do
  [ "$p" = "$$" ] && continue
  if tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | grep -qE 'jupyter|berth'; then
    # Its process group: Jupyter with its kernels (each started detached, in a group of its own).
    g=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f3)
    if [ -n "$g" ] && [ "$g" != "$(sed 's/.*) //' /proc/$$/stat | cut -d' ' -f3)" ]; then
      kill -TERM -- "-$g" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
    else
      kill -TERM "$p" 2>/dev/null || true
    fi
    alive="$alive $p"
  fi
done
# Jupyter shuts its kernels down first: a few seconds, then it is made to.
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  left=""
  for p in $alive; do kill -0 "$p" 2>/dev/null && left="$left $p"; done
  [ -z "$left" ] && break
  sleep 0.5
done
for p in $left; do kill -KILL "$p" 2>/dev/null || true; done
exit 0
)SH";
}

SshHostProvider::SshHostProvider(Options opt) : m_opt(std::move(opt)) {}

Capabilities ssh_host_capabilities() {
    Capabilities c;
    c.billed = false;
    c.stop_keeps_disk = true;
    c.bootstrap_over_ssh = true;
    c.lists_machines = false;
    c.filters_offers = false;
    c.workdir = "~"; // each machine's own, from its spec (default ~/berth/NAME)
    c.destroy_loses = {};
    c.self_stop = "api"; // the watcher runs the row's self_stop: berth's processes end
    c.poll_interval = std::chrono::milliseconds(500);
    c.storage_note = "the host's own disk: the work directory (default ~/berth/NAME) and the "
                     "store (default ~/.berth/storage) stay until you remove them";
    c.stop_note = "berth's processes on the host end (Jupyter, its kernels, the watcher); "
                  "every file stays";
    c.destroy_note = "berth's machine directory on the host is removed; your work directory "
                     "and the store stay";
    return c;
}

Capabilities SshHostProvider::capabilities() const {
    return ssh_host_capabilities();
}

Result<std::string> sshhost::run_on(const sh::Dest &d, const std::string &script,
                                    const std::string &name, std::chrono::seconds timeout) {
    return run_command(d, "sh -s -- " + (name.empty() ? std::string("-") : name), script, timeout);
}

Result<std::string> sshhost::run_command(const sh::Dest &d, const std::string &command,
                                         const std::string &input, std::chrono::seconds timeout) {
    std::vector<std::string> argv = {"ssh", "-T", "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"};
    auto cfg = ssh::user_config_args();
    argv.insert(argv.end(), cfg.begin(), cfg.end());
    if (d.port > 0) argv.insert(argv.end(), {"-p", std::to_string(d.port)});
    if (!d.user.empty()) argv.insert(argv.end(), {"-l", d.user});
    argv.push_back(d.host);
    argv.push_back(command);
    auto r = proc::run(argv, {.input = input, .env = {}, .timeout = timeout});
    if (!r) return tl::unexpected(r.error());
    if (r->timed_out)
        return fail(ErrorKind::network, "host " + d.text + " did not answer within " +
                                            std::to_string(timeout.count()) + " s");
    if (r->status == 255) {
        auto lines = str::split(str::trim(r->err), '\n');
        return fail(ErrorKind::network,
                    "cannot reach host " + d.text +
                        " over SSH: " + (lines.empty() ? "ssh failed" : str::trim(lines.back())),
                    "check `ssh " + d.text + "` works without a password prompt (BatchMode)");
    }
    if (r->status == 3) return fail(ErrorKind::not_found, "no such berth machine on " + d.text);
    if (r->status != 0) {
        auto lines = str::split(str::trim(r->err), '\n');
        return fail("on host " + d.text + ": " +
                    (lines.empty() ? "exit " + std::to_string(r->status) : lines.back()));
    }
    return r->out;
}

// The port and user ssh would use for this destination (`ssh -G`: the user's config applied),
// so berth's own ssh commands say the same thing explicitly.
SshEndpoint sshhost::resolve(const sh::Dest &d) {
    SshEndpoint e;
    e.host = d.host;
    e.port = d.port > 0 ? d.port : 22;
    e.user = d.user;
    std::vector<std::string> argv = {"ssh", "-G"};
    auto cfg = ssh::user_config_args();
    argv.insert(argv.end(), cfg.begin(), cfg.end());
    if (d.port > 0) argv.insert(argv.end(), {"-p", std::to_string(d.port)});
    if (!d.user.empty()) argv.insert(argv.end(), {"-l", d.user});
    argv.push_back(d.host);
    auto r = proc::run(argv, {.input = {}, .env = {}, .timeout = std::chrono::seconds(10)});
    if (!r || r->status != 0) return e;
    for (const auto &line : str::split(r->out, '\n')) {
        auto parts = str::split(str::trim(line), ' ');
        if (parts.size() != 2) continue;
        if (parts[0] == "port") {
            int p = std::atoi(parts[1].c_str());
            if (p > 0 && p < 65536) e.port = p;
        } else if (parts[0] == "user" && e.user.empty()) {
            bool ok = !parts[1].empty() && parts[1].size() < 64;
            for (char c : parts[1])
                ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                            c == '_');
            if (ok) e.user = parts[1];
        }
    }
    return e;
}

Result<sh::Probe> sshhost::probe(const sh::Dest &d) {
    auto out = run_on(d, probe_script, "", std::chrono::seconds(60));
    if (!out) return tl::unexpected(out.error());
    return sh::parse_probe(*out);
}

Result<std::vector<Offer>> SshHostProvider::offers(const nlohmann::json &) {
    std::vector<std::string> hosts;
    for (const auto &h : str::split(opt(m_opt, "hosts") + "," + opt(m_opt, "host"), ','))
        for (const auto &w : str::split(h, ' '))
            if (!str::trim(w).empty() &&
                std::find(hosts.begin(), hosts.end(), str::trim(w)) == hosts.end())
                hosts.push_back(str::trim(w));
    if (hosts.empty())
        return fail(ErrorKind::user, "no SSH hosts to list",
                    "pass --host [user@]host[:port], or list them in the config: "
                    "`berth config set provider.ssh.hosts \"lab,box2\"`",
                    2);
    std::vector<Offer> out;
    Error first{"no host answered"};
    for (const auto &h : hosts) {
        auto d = sh::parse_dest(h);
        if (!d) return tl::unexpected(d.error());
        auto p = sh::probe(*d);
        if (!p) {
            if (out.empty()) first = p.error();
            continue;
        }
        Offer o;
        o.provider = "ssh";
        o.id = h;
        o.gpu_name = p->gpus.empty() ? "none" : p->gpus[0].first;
        o.gpu_count = static_cast<int>(p->gpus.size());
        o.vram_gb = p->gpus.empty() ? 0 : p->gpus[0].second;
        o.reliability = 1.0;
        o.location = h;
        o.raw = {{"cpu_cores", p->cpus},
                 {"cpu_ram", p->ram_gb * 1000.0},
                 {"disk_space", p->free_gb},
                 {"arch", p->arch}};
        out.push_back(std::move(o));
    }
    if (out.empty()) return tl::unexpected(first);
    return out;
}

Result<UpPlan> SshHostProvider::plan(InstanceSpec spec, const Options &o) {
    std::string host = opt(o, "host", opt(o, "offer"));
    if (host.empty())
        return fail(ErrorKind::user, "which host? --host is needed",
                    "berth up " + spec.name +
                        " --provider ssh --host [user@]host[:port] (or an alias of your "
                        "~/.ssh/config; `berth config set provider.ssh.host lab` for a default)",
                    2);
    auto d = sh::parse_dest(host);
    if (!d) return tl::unexpected(d.error());
    auto p = sh::probe(*d);
    if (!p) return tl::unexpected(p.error());
    if (p->arch != "x86_64")
        return fail(ErrorKind::refused,
                    "host " + host + " is " + p->arch + "; berth's agent is built for x86_64",
                    "use an x86_64 host", 1);
    if (p->free_gb < 1.0) {
        char b[64];
        std::snprintf(b, sizeof b, "%.2f GB", p->free_gb);
        return fail(ErrorKind::refused, "host " + host + " has " + b + " free in its home",
                    "free some space there first", 1);
    }
    auto workdir =
        path_on_host("work directory", opt(o, "workdir", "~/berth/" + spec.name), p->home);
    if (!workdir) return tl::unexpected(workdir.error());
    auto store = path_on_host("store", opt(o, "store", "~/.berth/storage"), p->home);
    if (!store) return tl::unexpected(store.error());
    spec.offer_id = host;
    spec.user_ssh = true;
    spec.agent_dir = p->home + "/.berth/machines/" + spec.name;
    spec.host_workdir = *workdir;
    spec.host_store = *store;
    spec.host_link_home = opt(o, "link-home") == "true";
    // Given back to forget/purge_store with the record (never from the command line).
    spec.remember["claim"] = random_hex(8) + "@" + d->text;
    spec.remember["machine-store"] = *store;
    UpPlan plan{std::move(spec), {}, {}};
    char line[256];
    std::snprintf(line, sizeof line, "host %s: %s, %d CPUs, %.0f GB RAM, %.0f GB free",
                  host.c_str(), p->arch.c_str(), p->cpus, p->ram_gb, p->free_gb);
    plan.notes.push_back(line);
    std::string gpus;
    for (const auto &[n, v] : p->gpus) {
        std::snprintf(line, sizeof line, "%s%s (%.0f GB)", gpus.empty() ? "" : ", ", n.c_str(), v);
        gpus += line;
    }
    plan.notes.push_back("GPUs: " + (gpus.empty() ? std::string("none") : gpus));
    plan.notes.push_back("work directory " + *workdir + ", store " + *store +
                         (plan.spec.host_link_home ? " (the home's paths linked into it)" : ""));
    return plan;
}

Result<MachineInfo> SshHostProvider::create(const InstanceSpec &spec) {
    auto d = sh::parse_dest(spec.offer_id);
    if (!d) return tl::unexpected(d.error());
    std::string claim = opt(spec.remember, "claim");
    claim = claim.substr(0, claim.find('@'));
    std::string script = agent_dir_expr() + "W=" + str::shell_quote(spec.host_workdir) +
                         "\nS=" + str::shell_quote(spec.host_store) +
                         "\nC=" + str::shell_quote(claim) + R"SH(
if [ -f "$D/state" ]; then echo "a berth machine '$1' is already on this host ($D)" >&2; exit 4; fi
umask 077
# A store berth makes is marked so: `destroy --purge` removes only what berth made or filled.
if [ ! -e "$S" ] || [ -z "$(ls -A "$S" 2>/dev/null)" ]; then mkdir -p "$S" && printf 'a berth store\n' > "$S/.berth-store"; fi
mkdir -p "$D" "$S" && chmod 700 "$D"
# The claim first: an `up` killed from here on is undone by the record that holds it.
printf '%s\n' "$C" > "$D/claim"
printf '%s\n' "$S" > "$D/store"
umask 022
mkdir -p "$W"
date +%s > "$D/created"
printf 'running\n' > "$D/state.new" && mv -f "$D/state.new" "$D/state"
)SH";
    auto out = sh::run_on(*d, script, spec.name, std::chrono::seconds(60));
    if (!out) {
        if (str::contains(out.error().what, "already on this host"))
            return fail(ErrorKind::refused, out.error().what,
                        "another berth made it: `berth destroy` it there, or pick another name", 1);
        return tl::unexpected(out.error());
    }
    MachineInfo m;
    m.id = sh::machine_id(spec.name, d->text);
    m.state = MachineState::loading;
    m.label = berth_label(spec.name);
    return m;
}

Result<MachineInfo> SshHostProvider::describe(const std::string &id) {
    auto parsed = sh::parse_id(id);
    if (!parsed) return tl::unexpected(parsed.error());
    const auto &[name, d] = *parsed;
    auto out = sh::run_on(d,
                          agent_dir_expr() + "[ -f \"$D/state\" ] && { cat \"$D/state\"; cat "
                                             "\"$D/created\" 2>/dev/null; } || echo gone\n",
                          name, std::chrono::seconds(30));
    if (!out) return tl::unexpected(out.error());
    auto lines = str::split(str::trim(*out), '\n');
    std::string st = lines.empty() ? "" : str::trim(lines[0]);
    MachineInfo m;
    m.id = id;
    m.label = berth_label(name);
    if (st == "running") {
        m.state = MachineState::running;
        m.ssh = sh::resolve(d);
    } else if (st == "stopped") {
        m.state = MachineState::stopped;
    } else if (st == "gone") {
        m.state = MachineState::gone;
    } else {
        return fail(ErrorKind::malformed,
                    "the state of '" + name + "' on " + d.text + " is damaged",
                    "look at ~/.berth/machines/" + name + "/state there");
    }
    if (lines.size() > 1) m.created_at = std::atof(lines[1].c_str());
    return m;
}

Result<> SshHostProvider::stop(const std::string &id) {
    auto parsed = sh::parse_id(id);
    if (!parsed) return tl::unexpected(parsed.error());
    auto out = sh::run_on(parsed->second, agent_dir_expr() + ssh_host_stop_script(), parsed->first,
                          std::chrono::seconds(60));
    if (!out && out.error().kind == ErrorKind::not_found) return {};
    if (!out) return tl::unexpected(out.error());
    return {};
}

Result<> SshHostProvider::start(const std::string &id) {
    auto parsed = sh::parse_id(id);
    if (!parsed) return tl::unexpected(parsed.error());
    auto out =
        sh::run_on(parsed->second,
                   agent_dir_expr() + "[ -d \"$D\" ] || exit 3\nprintf 'running\\n' > "
                                      "\"$D/state.new\" && mv -f \"$D/state.new\" \"$D/state\"\n",
                   parsed->first, std::chrono::seconds(60));
    if (!out) return tl::unexpected(out.error());
    return {};
}

Result<> SshHostProvider::destroy(const std::string &id) {
    auto parsed = sh::parse_id(id);
    if (!parsed) return tl::unexpected(parsed.error());
    // berth's directory for this machine only: the work directory and the store stay.
    auto out = sh::run_on(parsed->second,
                          agent_dir_expr() + "[ -d \"$D\" ] || exit 0\n(" + ssh_host_stop_script() +
                              ")\nrm -rf -- \"$D\"\n",
                          parsed->first, std::chrono::seconds(60));
    if (!out) return tl::unexpected(out.error());
    return {};
}

Result<> SshHostProvider::forget(const std::string &name) {
    // Only the directory this machine's own `up` claimed: a namesake made by another berth
    // (another laptop) has another claim, or none.
    std::string claim = opt(m_opt, "claim");
    auto at = claim.find('@');
    if (at == std::string::npos || at == 0 || !sh::valid_name(name)) return {};
    auto d = sh::parse_dest(claim.substr(at + 1));
    if (!d) return {};
    auto out = sh::run_on(*d,
                          agent_dir_expr() + "C=" + str::shell_quote(claim.substr(0, at)) +
                              "\n[ -d \"$D\" ] || exit 0\n"
                              "[ \"$(cat \"$D/claim\" 2>/dev/null)\" = \"$C\" ] || exit 0\n(" +
                              ssh_host_stop_script() + ")\nrm -rf -- \"$D\"\n",
                          name, std::chrono::seconds(60));
    if (!out) return tl::unexpected(out.error());
    return {};
}

Result<std::string> SshHostProvider::purge_store(const std::string &id, bool check_only) {
    auto parsed = sh::parse_id(id);
    if (!parsed) return tl::unexpected(parsed.error());
    return sh::purge_store(parsed->second, parsed->first, opt(m_opt, "machine-store"), check_only);
}

Result<std::string> sh::purge_store(const Dest &d, const std::string &name,
                                    const std::string &store, bool check_only) {
    if (store.empty())
        return fail(ErrorKind::user,
                    "--purge: berth did not record which store '" + name +
                        "' used (it was made by an older berth)",
                    "remove the store on " + d.text + " by hand if you mean to", 2);
    if (store[0] != '/' || str::contains(store, "/../") ||
        store.find_first_of("\n\r") != std::string::npos)
        return fail(ErrorKind::malformed, "--purge: the recorded store '" + store + "' is bad");
    std::string script = "S=" + str::shell_quote(store) + "\nCHECK=" + (check_only ? "1" : "0") +
                         R"SH(
[ -e "$S" ] || exit 0
[ -d "$S" ] && [ ! -L "$S" ] || { echo "$S is not a directory" >&2; exit 5; }
H=$(cd "$HOME" && pwd -P); R=$(cd "$S" && pwd -P)
[ -n "$R" ] && [ "$R" != / ] || { echo "$S is the root directory" >&2; exit 5; }
case "$H/" in "$R"/*) echo "$S holds your home" >&2; exit 5 ;; esac
case "$R" in "$H/.berth"|"$H/.berth/machines"|"$H/.berth/machines/"*|"$H/.berth/bin") echo "$S is berth's own directory" >&2; exit 5 ;; esac
if [ -n "$(ls -A "$R")" ] && [ ! -f "$R/.berth-store" ] && [ ! -d "$R/cfg" ] && [ ! -f "$R/.berth/manifest.json" ]; then
  echo "$S was not made by berth (no .berth-store, cfg/ or .berth/manifest.json)" >&2; exit 5
fi
others=""
for m in "$HOME/.berth/machines"/*; do
  [ -d "$m" ] || continue
  n=${m##*/}
  [ "$n" = "$1" ] && continue
  # A Slurm machine whose job has ended uses nothing any more; a directory with neither a job
  # nor a state is no machine (what a dying agent wrote after its directory went).
  if [ -f "$m/job" ]; then
    if command -v squeue >/dev/null 2>&1 && ! squeue -h -j "$(cat "$m/job")" 2>/dev/null | grep -q .; then continue; fi
  elif [ ! -f "$m/state" ]; then continue; fi
  # A machine that did not say which store it uses may use this one.
  if [ ! -f "$m/store" ] || [ "$(cat "$m/store")" = "$S" ]; then others="$others $n"; fi
done
[ -z "$others" ] || { echo "berth machines on this host may use $S:$others" >&2; exit 6; }
links=$(find "$H" -xdev -maxdepth 4 -type l 2>/dev/null | while IFS= read -r l; do
  case "$l" in "$R"/*) continue ;; esac
  t=$(readlink -f -- "$l") || continue
  case "$t" in "$R"|"$R"/*) printf ' %s' "$l" ;; esac
done)
[ -z "$links" ] || { echo "your home links into $S:$links" >&2; exit 7; }
size=$(du -sh "$R" 2>/dev/null | cut -f1)
if [ "$CHECK" = 1 ]; then echo "$S, $size"; exit 0; fi
rm -rf -- "$R" || { echo "could not remove all of $S" >&2; exit 8; }
echo "$S, $size"
)SH";
    auto out = run_on(d, script, name, std::chrono::seconds(300));
    if (!out) {
        const auto &w = out.error().what;
        std::string fix = str::contains(w, "links into")
                              ? "un-persist those paths first (`berth persist remove PATH` on the "
                                "host), then purge"
                          : str::contains(w, "may use")
                              ? "destroy those machines first, or keep the store"
                              : "remove it by hand if you mean to";
        return fail(ErrorKind::refused, "--purge: " + w, fix, 1);
    }
    std::string what = str::trim(*out);
    return what.empty() ? what : d.text + ":" + what;
}

ProviderRow ssh_host_provider_row() {
    ProviderRow row;
    row.name = "ssh";
    row.summary = "a host you already have, reached with your own ssh (not billed)";
    row.capabilities = ssh_host_capabilities();
    row.options = {
        {"host", "[user@]host[:port] or an alias of your ~/.ssh/config", "", false, true, true},
        {"hosts", "hosts `berth offers --provider ssh` lists (comma-separated; config)", "", false,
         true, true},
        {"workdir", "where Jupyter is rooted on the host", "~/berth/NAME"},
        {"store", "the persistent store on the host", "~/.berth/storage"},
        {"link-home", "link the home's persisted paths into the store (the home is kept anyway)",
         "", true},
        {"claim", "", "", false, false, false, true},
        {"machine-store", "", "", false, false, false, true},
    };
    row.make = [](const ProviderContext &ctx) -> Result<std::unique_ptr<Provider>> {
        return std::unique_ptr<Provider>(new SshHostProvider(ctx.options));
    };
    // On the host, when the machine's watcher decides: the same stop, from inside.
    row.self_stop = [](const std::string &, const std::string &, const std::string &) -> Result<> {
        // Detached, a second late: the stop ends this watcher too, once it has said why.
        std::string dir = paths::agent_dir().string();
        auto r = proc::run(
            {"setsid", "-f", "sh", "-c", "sleep 1\nD=\"$1\"\n" + ssh_host_stop_script(), "sh", dir},
            {.input = {}, .env = {}, .timeout = std::chrono::seconds(30)});
        if (!r) return tl::unexpected(r.error());
        if (r->status != 0) return fail("stopping this machine failed: " + str::trim(r->err));
        return {};
    };
    return row;
}

} // namespace berth
