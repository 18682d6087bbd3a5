#include "provider/local/local_provider.hpp"

#include "core/json_read.hpp"
#include "core/paths.hpp"
#include "util/fs.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <cerrno>
#include <csignal>
#include <ctime>
#include <fcntl.h>
#include <map>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace berth {

namespace stdfs = std::filesystem;

stdfs::path local_provider_root() {
    if (const char *e = std::getenv("BERTH_LOCAL_ROOT"); e && *e == '/') return e;
    return paths::data_home() / "berth" / "local";
}

LocalProvider::LocalProvider(stdfs::path root) : m_root(std::move(root)) {}

std::vector<Offer> LocalProvider::parse_nvidia_smi(const std::string &csv) {
    std::map<std::string, std::pair<int, double>> by_model;
    for (const auto &line : str::split(csv, '\n')) {
        auto cols = str::split(line, ',');
        if (cols.size() < 2) continue;
        auto name = str::trim(cols[0]);
        double mib = std::atof(str::trim(cols[1]).c_str());
        auto &e = by_model[name];
        ++e.first;
        e.second = mib / 1024.0;
    }
    std::vector<Offer> out;
    for (const auto &[name, e] : by_model)
        out.push_back(local_offer("local-" + std::to_string(out.size()), name, e.first, e.second));
    return out;
}

Offer LocalProvider::local_offer(const std::string &id, const std::string &gpu, int count,
                                 double vram_gb) {
    Offer o;
    o.provider = "local";
    o.id = id;
    o.gpu_name = gpu;
    o.gpu_count = count;
    o.vram_gb = vram_gb;
    o.reliability = 1.0;
    o.location = "this machine";
    return o;
}

Result<std::vector<Offer>> LocalProvider::offers(const nlohmann::json &) {
    if (proc::which("nvidia-smi")) {
        auto r = proc::run(
            {"nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"});
        if (r && r->status == 0) {
            auto o = parse_nvidia_smi(r->out);
            if (!o.empty()) return o;
        }
    }
    return std::vector<Offer>{local_offer("local-0", "none", 0, 0)};
}

Capabilities LocalProvider::capabilities() const {
    return local_capabilities();
}

Capabilities local_capabilities() {
    Capabilities c;
    c.billed = false;
    c.stop_keeps_disk = false; // the root is an ephemeral layer; /storage and /notebooks stay
    c.shared_volume = true;
    c.bootstrap_over_ssh = false;
    c.lists_machines = true;
    c.filters_offers = false;
    c.workdir = "/notebooks";
    c.destroy_loses = {"notebooks"};
    c.self_stop = "agent";
    c.poll_interval = std::chrono::milliseconds(150);
    c.storage_note = "/storage (kept across machines), /notebooks (kept until destroy)";
    c.stop_note = "/storage and /notebooks are kept";
    c.destroy_note = "/storage kept";
    return c;
}

Result<std::vector<MachineInfo>> LocalProvider::list() {
    std::vector<MachineInfo> out;
    std::error_code ec;
    auto dir = m_root / "instances";
    if (!stdfs::exists(dir, ec)) return out;
    for (const auto &e : stdfs::directory_iterator(dir, ec)) {
        if (!e.is_directory(ec)) continue;
        auto m = describe(e.path().filename().string());
        if (!m) return tl::unexpected(m.error());
        if (m->state != MachineState::gone) out.push_back(*m);
    }
    if (ec) return fail_errno(dir.string(), ec.value());
    return out;
}

ProviderRow local_provider_row() {
    ProviderRow row;
    row.name = "local";
    row.summary = "sandboxes on this machine: namespaces, an ephemeral root, /storage shared";
    row.capabilities = local_capabilities();
    row.make = [](const ProviderContext &) -> Result<std::unique_ptr<Provider>> {
        return std::unique_ptr<Provider>(new LocalProvider(local_provider_root()));
    };
    return row;
}

static Result<> check_host_can_run() {
    if (::geteuid() != 0)
        return fail("the local provider needs root to create mount and PID namespaces",
                    "run berth with sudo");
    if (!proc::which("sshd") && !stdfs::exists("/usr/sbin/sshd"))
        return fail("sshd not found: the machine needs OpenSSH's server", "install openssh-server");
    for (const char *app : {"jupyter-notebook", "jupyter-lab", "jupyter-server"})
        if (proc::which(app)) return {};
    return fail("Jupyter not found: the machine runs the host's Jupyter",
                "install jupyter-notebook");
}

Result<MachineInfo> LocalProvider::create(const InstanceSpec &spec) {
    BERTH_TRY(check_host_can_run());
    auto dir = instance(spec.name);
    if (stdfs::exists(dir.root))
        return fail("instance directory " + dir.root.string() + " already exists",
                    "destroy the old instance first, or pick another name");
    BERTH_TRY(fs::make_dirs(dir.root, 0700));
    BERTH_TRY(fs::make_dirs(dir.notebooks(), 0755));
    BERTH_TRY(fs::make_dirs(store(), 0755));
    auto kg = proc::run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "berth-" + spec.name,
                         "-f", dir.host_key().string()});
    if (!kg || kg->status != 0)
        return fail("ssh-keygen failed for the host key", "check that openssh-client works");
    BERTH_TRY(fs::write_file_atomic(dir.authorized_keys(), spec.authorized_keys, 0600));
    BERTH_TRY(fs::make_dirs(dir.root / "keys", 0700)); // keys added while it runs
    nlohmann::json env = nlohmann::json::object();
    for (const auto &[k, v] : spec.env)
        env[k] = v;
    nlohmann::json j{{"name", spec.name},
                     {"max_hours", spec.max_hours},
                     {"idle",
                      {{"seconds", spec.idle_seconds},
                       {"cpu_percent", spec.idle_thresholds.cpu_percent},
                       {"network_kbps", spec.idle_thresholds.network_kbps},
                       {"gpu_percent", spec.idle_thresholds.gpu_percent}}},
                     {"created", std::time(nullptr)},
                     {"jupyter", spec.jupyter},
                     {"workdir", spec.workdir},
                     {"storage", spec.storage},
                     {"onstart", spec.onstart},
                     {"env", env},
                     {"install_berth", spec.install_berth},
                     {"keep_disk", spec.keep_disk},
                     {"user", spec.user},
                     {"ssh_listen", spec.ssh_listen},
                     {"ssh_port", spec.ssh_port}};
    BERTH_TRY(fs::write_file_atomic(dir.spec(), j.dump() + "\n", 0600));
    BERTH_TRY(start(spec.name));
    MachineInfo m;
    m.id = spec.name;
    m.state = MachineState::loading;
    auto pub = fs::read_file(dir.host_key().string() + ".pub");
    if (pub) m.ssh.host_key = str::trim(*pub);
    return m;
}

Result<int> LocalProvider::agent_pid(const std::string &id) const {
    auto text = fs::read_file(instance(id).pid_file());
    if (!text) return 0;
    int pid = std::atoi(text->c_str());
    if (pid <= 0 || ::kill(pid, 0) != 0) return 0;
    // A recycled pid is not ours: the agent's command line names the instance directory.
    auto cmd = fs::read_file("/proc/" + std::to_string(pid) + "/cmdline");
    if (!cmd || !str::contains(*cmd, instance(id).root.string())) return 0;
    return pid;
}

Result<> LocalProvider::start(const std::string &id) {
    BERTH_TRY(check_host_can_run());
    auto dir = instance(id);
    if (!stdfs::exists(dir.spec())) return fail("no local instance '" + id + "'", "see `berth ls`");
    auto pid = agent_pid(id);
    if (pid && *pid) return {}; // already running
    // Until the agent writes its own state, the machine is starting (describe reads this).
    nlohmann::json boot{{"state", "starting"},
                        {"message", "starting the agent"},
                        {"updated", static_cast<long long>(std::time(nullptr))}};
    BERTH_TRY(fs::write_file_atomic(dir.machine(), boot.dump() + "\n", 0600));
    std::error_code e2;
    auto self = m_agent_binary.empty() ? stdfs::read_symlink("/proc/self/exe", e2) : m_agent_binary;
    if (e2) return fail("cannot find berth's own binary: " + e2.message());
    pid_t child = ::fork();
    if (child < 0) return fail_errno("fork", errno);
    if (child == 0) {
        ::setsid();
        int log = ::open(dir.log().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        ::dup2(null, 0);
        ::dup2(log, 1);
        ::dup2(log, 2);
        // Detach fully: the agent outlives this berth command.
        if (::fork() != 0) ::_exit(0);
        ::execl(self.c_str(), self.c_str(), "agent", "boot", "--instance", dir.root.c_str(),
                "--storage", store().c_str(), static_cast<char *>(nullptr));
        ::_exit(127);
    }
    int st = 0;
    ::waitpid(child, &st, 0);
    return {};
}

Result<MachineInfo> LocalProvider::describe(const std::string &id) {
    auto dir = instance(id);
    MachineInfo m;
    m.id = id;
    m.label = berth_label(id);
    if (!stdfs::exists(dir.spec())) {
        m.state = MachineState::gone;
        return m;
    }
    auto pub = fs::read_file(dir.host_key().string() + ".pub");
    if (pub) m.ssh.host_key = str::trim(*pub);
    m.ssh.host = "127.0.0.1";
    m.ssh.user = "root";
    auto pid = agent_pid(id);
    bool alive = pid && *pid;
    auto text = fs::read_file(dir.machine());
    nlohmann::json j = text ? nlohmann::json::parse(*text, nullptr, false) : nlohmann::json();
    if (j.is_object()) {
        std::string st = jsonr::text(j, "state");
        m.message = jsonr::text(j, "message");
        m.ssh.port = static_cast<int>(jsonr::integer(j, "ssh_port"));
        m.jupyter_port = static_cast<int>(jsonr::integer(j, "jupyter_port"));
        m.jupyter_token = jsonr::text(j, "jupyter_token");
        bool young = std::time(nullptr) - jsonr::integer(j, "updated") < 30;
        if (st == "starting" && !alive && young)
            m.state = MachineState::provisioning;
        else if (st == "running" && alive)
            m.state = MachineState::running;
        else if (st == "stopped" || !alive)
            m.state = st == "stopped" ? MachineState::stopped : MachineState::exited;
        else
            m.state = MachineState::loading;
        if (!alive && st != "stopped" && m.message.empty())
            m.message = "the agent died (see " + dir.log().string() + ")";
    } else {
        m.state = alive ? MachineState::loading : MachineState::stopped;
    }
    return m;
}

Result<> LocalProvider::stop(const std::string &id) {
    auto pid = agent_pid(id);
    if (!pid || !*pid) return {};
    ::kill(*pid, SIGTERM);
    for (int i = 0; i < 150; ++i) {
        if (::kill(*pid, 0) != 0) return {};
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ::kill(*pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    return {};
}

Result<> LocalProvider::add_authorized_key(const std::string &id, const std::string &key) {
    auto dir = instance(id);
    if (!stdfs::exists(dir.spec())) return fail("no local instance '" + id + "'");
    BERTH_TRY(fs::make_dirs(dir.root / "keys", 0700));
    auto file = dir.root / "keys" / "authorized_keys";
    auto text = fs::read_file(file).value_or("");
    if (str::contains(text, key)) return {};
    return fs::write_file_atomic(file, text + key + "\n", 0600);
}

Result<> LocalProvider::remove_authorized_key(const std::string &id, const std::string &key) {
    auto file = instance(id).root / "keys" / "authorized_keys";
    auto text = fs::read_file(file).value_or("");
    std::string kept;
    for (const auto &line : str::split(text, '\n'))
        if (!line.empty() && str::trim(line) != str::trim(key)) kept += line + "\n";
    if (kept == text) return {};
    return fs::write_file_atomic(file, kept, 0600);
}

std::optional<stdfs::path> LocalProvider::machine_root(const std::string &id) const {
    auto pid = agent_pid(id);
    if (!pid || !*pid) return std::nullopt;
    // The agent forks the machine's PID 1, which chroots; find a process whose root differs.
    for (int p : {*pid}) {
        auto children =
            fs::read_file("/proc/" + std::to_string(p) + "/task/" + std::to_string(p) + "/children")
                .value_or("");
        std::vector<int> cand{p};
        for (const auto &c : str::split(str::trim(children), ' '))
            if (!c.empty()) cand.push_back(std::atoi(c.c_str()));
        for (int c : cand) {
            std::error_code ec;
            auto root = stdfs::path("/proc/" + std::to_string(c) + "/root");
            auto target = stdfs::read_symlink(root, ec);
            if (!ec && target != "/") return root;
        }
    }
    return std::nullopt;
}

std::optional<stdfs::path> LocalProvider::host_path(const std::string &id,
                                                    const std::string &path) {
    std::string p = path;
    while (!p.empty() && p[0] == '/')
        p.erase(0, 1);
    if (p == "notebooks" || p.rfind("notebooks/", 0) == 0)
        return instance(id).notebooks() / p.substr(std::min<std::size_t>(p.size(), 10));
    if (p == "storage" || p.rfind("storage/", 0) == 0)
        return store() / p.substr(std::min<std::size_t>(p.size(), 8));
    return std::nullopt;
}

Result<> LocalProvider::destroy(const std::string &id) {
    BERTH_TRY(stop(id));
    auto dir = instance(id);
    if (agent_pid(id).value_or(0))
        return fail("instance '" + id + "' did not stop", "see " + dir.log().string());
    // The ephemeral layer was a tmpfs inside the machine's namespace: it is already gone, so
    // what remains is the instance's own files (its /notebooks among them).
    std::error_code ec;
    stdfs::remove_all(dir.root, ec);
    if (ec) return fail("cannot remove " + dir.root.string() + ": " + ec.message());
    return {};
}

} // namespace berth
