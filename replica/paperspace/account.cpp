#include "account.hpp"

#include "provider/local/local_provider.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ps {

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string iso(double epoch) {
    if (epoch <= 0) return {};
    std::time_t t = static_cast<std::time_t>(epoch);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[48];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[64];
    std::snprintf(out, sizeof out, "%s.%03dZ", buf,
                  static_cast<int>((epoch - std::floor(epoch)) * 1000));
    return out;
}

namespace {

std::string lower(std::string s) {
    for (auto &c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// One CSV line, with "quoted, fields".
std::vector<std::string> csv_fields(const std::string &line) {
    std::vector<std::string> out(1);
    bool quoted = false;
    for (std::size_t i = 0; i < line.size(); ++i) {
        char c = line[i];
        if (c == '"') {
            if (quoted && i + 1 < line.size() && line[i + 1] == '"') {
                out.back() += '"';
                ++i;
            } else {
                quoted = !quoted;
            }
        } else if (c == ',' && !quoted) {
            out.emplace_back();
        } else if (c != '\r') {
            out.back() += c;
        }
    }
    return out;
}

std::vector<std::vector<std::string>> read_csv(const std::string &path) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot read " + path);
    std::vector<std::vector<std::string>> rows;
    std::string line;
    std::getline(f, line); // the header
    while (std::getline(f, line))
        if (!line.empty()) rows.push_back(csv_fields(line));
    return rows;
}

std::string new_id(const char *prefix, std::size_t n) {
    // Paperspace ids are short lowercase alphanumerics ("psq8kd7o", events "esf3h9...").
    std::string hex = berth::random_hex(16);
    std::string out = prefix;
    for (std::size_t i = 0; i < n && i < hex.size(); ++i)
        out += static_cast<char>(std::isdigit(static_cast<unsigned char>(hex[i])) && i % 3 == 0
                                     ? 'a' + (hex[i] - '0')
                                     : hex[i]);
    return out;
}

[[noreturn]] void refuse(int status, const std::string &message) {
    throw ApiError{status, message};
}

// Which machine types a template runs: not recorded for v1 (data/os_templates.json says so),
// so the replica decides from the template's name, and says so in the README.
bool template_runs(const json &t, const MachineType &m) {
    std::string name =
        t.contains("name") && t["name"].is_string() ? t["name"].get<std::string>() : "";
    bool gpu = m.gpu_count > 0;
    if (t.contains("windows") && t["windows"].is_boolean() && t["windows"].get<bool>())
        return false;               // berth's agent is for Linux
    if (name.empty()) return false; // legacy-only ids: not offered
    if (name.find("-cpu-") != std::string::npos) return !gpu;
    if (name.find("h100") != std::string::npos) return m.label.rfind("H100", 0) == 0;
    if (name.find("1x-a100") != std::string::npos) return m.label == "A100-80G";
    if (name.find("mliab") != std::string::npos) return gpu && m.label.rfind("H100", 0) != 0;
    if (name.find("-gpu-") != std::string::npos) return gpu;
    return true;
}

} // namespace

Account::Account(const std::string &dir, double boot) : m_boot(boot) {
    for (const auto &r : read_csv(dir + "/machine_types.csv")) {
        if (r.size() < 8) continue;
        MachineType t;
        t.label = r[0];
        t.gpu_name = r[1];
        t.gpu_count = std::stoi(r[2]);
        t.gpu_memory_gb = std::stod(r[3]);
        t.vcpus = std::stoi(r[4]);
        t.ram_gb = std::stod(r[5]);
        t.price = std::stod(r[6]);
        std::stringstream ss(r[7]);
        std::string reg;
        while (std::getline(ss, reg, ';'))
            if (!reg.empty()) t.regions.push_back(reg);
        m_types.push_back(t);
    }
    for (const auto &r : read_csv(dir + "/storage_network_prices.csv")) {
        if (r.size() < 3) continue;
        if (r[0] == "block_storage") m_disk_tiers.emplace_back(std::stod(r[1]), std::stod(r[2]));
        if (r[0] == "public_ip") m_ip_rate = std::stod(r[2]);
    }
    std::ifstream f(dir + "/os_templates.json");
    if (!f) throw std::runtime_error("cannot read " + dir + "/os_templates.json");
    json t = json::parse(f);
    for (const auto &x : t.at("templates")) {
        json item{{"id", x.at("id")},
                  {"name", x.value("name", json())},
                  {"agentType", x.value("agentType", json())},
                  {"operatingSystemLabel", x.value("operatingSystemLabel", json())},
                  {"defaultSizeGb", x.value("defaultSizeGb", json())},
                  {"dtCreated", "2024-11-01T00:00:00.000Z"}};
        json avail = json::array();
        for (const auto &m : m_types)
            if (template_runs(x, m))
                avail.push_back({{"machineTypeLabel", m.label}, {"isAvailable", true}});
        item["availableMachineTypes"] = avail;
        m_templates.push_back(item);
    }
}

Account::~Account() = default;

void Account::use_machines(const std::string &root, const std::string &berth_binary) {
    m_local = std::make_unique<berth::LocalProvider>(root);
    m_local->set_agent_binary(berth_binary);
    m_local_root = root;
}

// The VM behind a machine: made at its first boot, started again at every start with its
// current public IP (dynamic IPs change), its startup script run as root at boot (a run-once
// script only once: the kept disk remembers).
void Account::real_boot(Machine &m) {
    if (!m_local) return;
    std::string name = "ps-" + m.id;
    // The VM's power button: `poweroff` from inside ends PID 1, as on a real VM (the VM's
    // root is an overlay: the host's own poweroff is untouched). The replica then sees it off.
    std::string onstart = "mkdir -p /var/lib/paperspace-replica\n"
                          "rm -f /usr/sbin/poweroff && printf '#!/bin/sh\\nkill -TERM 1\\n' "
                          "> /usr/sbin/poweroff && chmod 755 /usr/sbin/poweroff\n";
    auto it = m_scripts.find(m.startup_script);
    if (it != m_scripts.end() && it->second.deleted == 0 && it->second.enabled) {
        const auto &sc = it->second;
        std::string marker = "PS_SCRIPT_" + berth::random_hex(8);
        std::string file = "/var/lib/paperspace-replica/startup-" + sc.id + ".sh";
        std::string done = "/var/lib/paperspace-replica/ran-" + sc.id;
        onstart += "cat > " + file + " <<'" + marker + "'\n" + sc.script + "\n" + marker + "\n";
        onstart += sc.run_once
                       ? "[ -e " + done + " ] || { bash " + file + " && touch " + done + "; }\n"
                       : "bash " + file + "\n";
    }
    if (!m.real) {
        berth::InstanceSpec spec;
        spec.name = name;
        spec.jupyter = false;
        spec.storage = false;
        spec.install_berth = false;
        spec.workdir = "/home/paperspace";
        spec.keep_disk = true;
        spec.user = "paperspace";
        spec.ssh_listen = m.public_ip;
        spec.ssh_port = 22;
        spec.onstart = onstart;
        auto c = m_local->create(spec);
        if (c) m.real = true;
        return;
    }
    // Started again: the new address and the current startup script.
    auto file = std::filesystem::path(m_local_root) / "instances" / name / "spec.json";
    if (auto text = berth::fs::read_file(file)) {
        auto j = json::parse(*text, nullptr, false);
        if (j.is_object()) {
            j["ssh_listen"] = m.public_ip;
            j["onstart"] = onstart;
            (void)berth::fs::write_file_atomic(file, j.dump() + "\n", 0600);
        }
    }
    (void)m_local->start(name);
}

void Account::real_stop(Machine &m) {
    if (m_local && m.real) (void)m_local->stop("ps-" + m.id);
}

bool Account::real_running(const Machine &m) {
    if (!m_local) return true;
    if (!m.real) return false;
    auto d = m_local->describe("ps-" + m.id);
    return d && d->state == berth::MachineState::running;
}

json Account::session(const std::string &key) const {
    return {{"team",
             {{"id", "te1rep1c"},
              {"namespace", "replica-team"},
              {"isPrivate", true},
              {"maxMachines", 10}}},
            {"user",
             {{"id", "us1rep1c"},
              {"email", "replica@example.com"},
              {"firstName", "Replica"},
              {"lastName", "User"},
              {"teamMemberships",
               json::array({{{"teamId", "te1rep1c"}, {"isOwner", true}, {"isAdmin", true}}})}}},
            {"keyHint", key.substr(0, 2) + "..."}};
}

json Account::standing() const {
    json msgs = json::array();
    if (!m_good_standing) msgs.push_back("Your account has an unpaid invoice.");
    return {{"hasPaymentMethod", true},
            {"isAdminLocked", false},
            {"isInGoodStanding", m_good_standing},
            {"messages", msgs}};
}

std::vector<json> Account::templates() const {
    return m_templates;
}

const MachineType &Account::type_of(const std::string &label) const {
    for (const auto &t : m_types)
        if (lower(t.label) == lower(label)) return t;
    refuse(400, "Invalid machineType: " + label.substr(0, 40));
}

std::string Account::region_code(const std::string &s) const {
    std::string l = lower(s);
    for (const char *code : {"ny2", "ca1", "ams1"})
        if (l == code || l.find(std::string("(") + code + ")") != std::string::npos) {
            std::string up = code;
            for (auto &c : up)
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            return up;
        }
    refuse(400, "Invalid region: " + s.substr(0, 40));
}

double Account::disk_rate(double gb) const {
    for (const auto &[size, rate] : m_disk_tiers)
        if (gb <= size) return rate;
    return m_disk_tiers.empty() ? 0 : m_disk_tiers.back().second;
}

std::string Account::fresh_ip() {
    return "127.10.0." + std::to_string(m_next_ip++ % 250 + 2);
}

Account::Event &Account::new_event(double now, const std::string &machine, const std::string &name,
                                   double duration, bool fails) {
    Event e;
    e.id = new_id("es", 8);
    e.machine_id = machine;
    e.name = name;
    e.created = now;
    e.started = now;
    e.state = "in progress";
    e.done_at = now + duration;
    e.fails = fails;
    m_event_order.push_back(e.id);
    return m_events[e.id] = e;
}

void Account::meter(Machine &m, double until) {
    // Rent while the machine runs (ready, restarting), until the stop is asked for; compute
    // while off only with the billing switch (SPEC §8: unsettled; off bills disk and a static
    // IP by default).
    bool running = m.state == "ready" || m.state == "restarting";
    const auto &t = type_of(m.type);
    if (m.running_since > 0 && until > m.running_since) {
        double h = (until - m.running_since) / 3600.0;
        if (running || m_bill_off) m.rent += h * t.price;
        if (running && m.public_ip_type == "dynamic") m.ip += h * m_ip_rate;
    }
    if (m.exists_since > 0 && until > m.exists_since)
        m.disk += (until - m.exists_since) / 3600.0 * disk_rate(m.disk_gb);
    m.running_since = until;
    m.exists_since = until;
}

void Account::settle(Machine &m, double now) {
    while (m.next_at > 0 && m.next_at <= now) {
        double at = m.next_at;
        if (m.next_state == "ready" && !real_running(m)) {
            m.next_at = now + 0.2; // ready once the VM's sshd answers
            break;
        }
        meter(m, at);
        m.state = m.next_state;
        m.modified = at;
        if (m.state == "ready") {
            m.ready_since = at;
            if (m.public_ip_type == "dynamic" && m.public_ip.empty()) m.public_ip = fresh_ip();
        }
        if (m.state == "off") {
            real_stop(m);
            if (m.public_ip_type == "dynamic") m.public_ip.clear();
        }
        m.next_state = m.then_state;
        m.next_at = m.then_at;
        m.then_state.clear();
        m.then_at = 0;
    }
    // Powered off from inside (`sudo poweroff`): the machine turns off, its rent stops.
    if (m.state == "ready" && m.real && m.next_at == 0 && !real_running(m)) {
        meter(m, now);
        m.state = "off";
        m.modified = now;
        new_event(now, m.id, "vm-shutdown", 0);
        if (m.public_ip_type == "dynamic") m.public_ip.clear();
        real_stop(m);
        return;
    }
    // The provider-side backstop: autoShutdownTimeout hours after it became ready.
    if (m.state == "ready" && m.auto_shutdown && m.auto_shutdown_hours && m.next_at == 0 &&
        now >= m.ready_since + *m.auto_shutdown_hours * 3600) {
        double at = m.ready_since + *m.auto_shutdown_hours * 3600;
        meter(m, at);
        m.state = "stopping";
        m.next_state = "off";
        m.next_at = at + m_boot / 2;
        new_event(at, m.id, "vm-shutdown-force", m_boot / 2);
        settle(m, now);
    }
}

void Account::advance(double now) {
    for (auto &[id, m] : m_machines) {
        settle(m, now);
        meter(m, now);
    }
    for (auto &[id, e] : m_events)
        if (e.state == "in progress" && e.done_at <= now) {
            e.state = e.fails ? "error" : "done";
            e.finished = e.done_at;
            if (e.fails)
                e.error = "Out of capacity for the selected machine type in this region. "
                          "Please try again later or choose another region.";
        }
}

Account::Machine &Account::find(const std::string &id) {
    auto it = m_machines.find(id);
    if (it == m_machines.end()) refuse(404, "Not found");
    return it->second;
}

json Account::machine_json(const Machine &m) const {
    const auto &t = type_of(m.type);
    json acc = t.gpu_count ? json::array({{{"count", t.gpu_count},
                                           {"memory", static_cast<long long>(t.gpu_memory_gb)},
                                           {"name", t.gpu_name}}})
                           : json();
    long long total = static_cast<long long>(m.disk_gb * 1073741824.0);
    return {{"id", m.id},
            {"name", m.name},
            {"state", m.state},
            {"machineType", t.label},
            {"region", m.region},
            {"os", "Ubuntu 22.04"},
            {"agentType", "LinuxMachine"},
            {"cpus", t.vcpus},
            {"ram", static_cast<long long>(t.ram_gb * 1073741824.0)},
            {"accelerators", acc},
            {"publicIp", m.public_ip.empty() ? json() : json(m.public_ip)},
            {"privateIp", m.private_ip},
            {"publicIpType", m.public_ip_type},
            {"networkId", json()},
            {"storageTotal", total},
            {"storageUsed", total / 10},
            {"storageRate", disk_rate(m.disk_gb)},
            {"usageRate", t.price},
            {"autoShutdownEnabled", m.auto_shutdown},
            {"autoShutdownTimeout", m.auto_shutdown_hours ? json(*m.auto_shutdown_hours) : json()},
            {"autoShutdownForce", m.auto_shutdown_force},
            {"autoSnapshotEnabled", false},
            {"autoSnapshotFrequency", json()},
            {"autoSnapshotSaveCount", json()},
            {"restorePointEnabled", false},
            {"restorePointFrequency", json()},
            {"restorePointSnapshotId", json()},
            {"reservation", json()},
            {"updatesPending", false},
            {"dtCreated", iso(m.created)},
            {"dtModified", iso(m.modified)},
            {"dtDeleted", m.deleted > 0 ? json(iso(m.deleted)) : json()}};
}

json Account::event_json(const Event &e) const {
    return {{"id", e.id},
            {"machineId", e.machine_id},
            {"name", e.name},
            {"state", e.state},
            {"error", e.error.empty() ? json() : json(e.error)},
            {"dtCreated", iso(e.created)},
            {"dtStarted", iso(e.started)},
            {"dtFinished", e.finished > 0 ? json(iso(e.finished)) : json()}};
}

std::vector<json> Account::machines(double now, const std::map<std::string, std::string> &f) {
    advance(now);
    std::vector<json> out;
    for (const auto &id : m_order) {
        auto it = m_machines.find(id);
        if (it == m_machines.end()) continue;
        const auto &m = it->second;
        if (f.count("name") && f.at("name") != m.name) continue;
        if (f.count("region") && region_code(f.at("region")) != m.region) continue;
        if (f.count("machineType") && lower(f.at("machineType")) != lower(m.type)) continue;
        out.push_back(machine_json(m));
    }
    return out;
}

json Account::machine(double now, const std::string &id) {
    advance(now);
    return machine_json(find(id));
}

json Account::create(double now, const json &b) {
    advance(now);
    if (!b.is_object()) refuse(400, "Invalid request body");
    for (const char *k : {"name", "machineType", "templateId", "diskSize", "region"})
        if (!b.contains(k) || b[k].is_null()) refuse(400, std::string("Missing field: ") + k);
    if (!m_good_standing)
        refuse(412, "Your account is not in good standing. Please resolve billing issues.");
    Machine m;
    m.id = new_id("ps", 7);
    m.name = b["name"].is_string() ? b["name"].get<std::string>() : "";
    if (m.name.empty() || m.name.size() > 64) refuse(400, "Invalid name");
    const auto &t =
        type_of(b["machineType"].is_string() ? b["machineType"].get<std::string>() : "");
    m.type = t.label;
    m.region = region_code(b["region"].is_string() ? b["region"].get<std::string>() : "");
    if (std::find(t.regions.begin(), t.regions.end(), m.region) == t.regions.end())
        refuse(400, "Machine type " + t.label + " is not available in region " + m.region);
    m.template_id = b["templateId"].is_string() ? b["templateId"].get<std::string>() : "";
    const json *tmpl = nullptr;
    for (const auto &x : m_templates)
        if (x["id"] == m.template_id) tmpl = &x;
    if (!tmpl) refuse(400, "Invalid templateId: " + m.template_id.substr(0, 20));
    bool runs = false;
    for (const auto &a : (*tmpl)["availableMachineTypes"])
        runs = runs || lower(a["machineTypeLabel"].get<std::string>()) == lower(t.label);
    if (!runs) refuse(400, "Template " + m.template_id + " cannot run machine type " + t.label);
    double disk = b["diskSize"].is_number() ? b["diskSize"].get<double>() : 0;
    if (b["diskSize"].is_string()) disk = std::atof(b["diskSize"].get<std::string>().c_str());
    if (disk < 50 || disk > 2000) refuse(400, "diskSize must be between 50 and 2000");
    m.disk_gb = disk;
    auto flag = [&](const char *k) {
        if (!b.contains(k)) return false;
        if (b[k].is_boolean()) return b[k].get<bool>();
        return b[k].is_string() && b[k].get<std::string>() == "true"; // docs send "true"
    };
    m.auto_shutdown = flag("autoShutdownEnabled");
    m.auto_shutdown_force = flag("autoShutdownForce");
    if (b.contains("autoShutdownTimeout") && !b["autoShutdownTimeout"].is_null()) {
        const auto &v = b["autoShutdownTimeout"];
        double h = v.is_number() ? v.get<double>() : std::atof(v.get<std::string>().c_str());
        if (h <= 0) refuse(400, "autoShutdownTimeout must be positive");
        m.auto_shutdown_hours = h;
    }
    if (b.contains("publicIpType") && b["publicIpType"].is_string())
        m.public_ip_type = b["publicIpType"].get<std::string>();
    if (m.public_ip_type != "static" && m.public_ip_type != "dynamic" && m.public_ip_type != "none")
        refuse(400, "Invalid publicIpType");
    if (b.contains("startupScriptId") && b["startupScriptId"].is_string()) {
        auto it = m_scripts.find(b["startupScriptId"].get<std::string>());
        if (it == m_scripts.end() || it->second.deleted > 0) refuse(400, "Invalid startupScriptId");
        m.startup_script = it->first;
        it->second.machines.push_back(m.id);
    }
    m.private_ip =
        "10.64." + std::to_string(m_next_ip / 250) + "." + std::to_string(m_next_ip % 250 + 2);
    if (m.public_ip_type == "static") {
        m.public_ip = fresh_ip();
        m_ips[m.public_ip] = Ip{m.public_ip, m.region, m.id, now, now, 0};
    }
    m.created = m.modified = now;
    m.running_since = m.exists_since = now;
    bool start = !b.contains("startOnCreate") || flag("startOnCreate");
    bool no_capacity = start && m_capacity_failures > 0;
    if (no_capacity) --m_capacity_failures;
    if (!start) {
        m.state = "off";
    } else if (no_capacity) {
        m.next_state = "off";
        m.next_at = now + m_boot / 2;
    } else {
        m.next_state = "starting";
        m.next_at = now + m_boot / 2;
        m.then_state = "ready";
        m.then_at = now + m_boot;
        if (m.public_ip_type == "dynamic") m.public_ip = fresh_ip();
        real_boot(m);
    }
    auto &e = new_event(now, m.id, "create", no_capacity ? m_boot / 2 : m_boot, no_capacity);
    m_machines[m.id] = m;
    m_order.push_back(m.id);
    return {{"data", machine_json(m)}, {"event", event_json(e)}};
}

json Account::update(double now, const std::string &id, const json &b) {
    advance(now);
    auto &m = find(id);
    if (!b.is_object()) refuse(400, "Invalid request body");
    if (b.contains("name") && b["name"].is_string()) m.name = b["name"];
    if (b.contains("autoShutdownEnabled") && b["autoShutdownEnabled"].is_boolean())
        m.auto_shutdown = b["autoShutdownEnabled"];
    if (b.contains("autoShutdownTimeout")) {
        const auto &v = b["autoShutdownTimeout"];
        if (v.is_null())
            m.auto_shutdown_hours.reset();
        else if (v.is_number() && v.get<double>() > 0)
            m.auto_shutdown_hours = v.get<double>();
        else
            refuse(400, "autoShutdownTimeout must be positive");
    }
    if (b.contains("autoShutdownForce") && b["autoShutdownForce"].is_boolean())
        m.auto_shutdown_force = b["autoShutdownForce"];
    m.modified = now;
    return machine_json(m);
}

json Account::start(double now, const std::string &id) {
    advance(now);
    auto &m = find(id);
    if (m.state == "starting" || m.state == "provisioning")
        refuse(409, "This machine is currently starting.");
    if (m.state == "stopping") refuse(409, "This machine is currently stopping.");
    if (m.state != "off") refuse(409, "This machine is already running.");
    bool no_capacity = m_capacity_failures > 0;
    if (no_capacity) --m_capacity_failures;
    meter(m, now);
    m.state = "starting";
    m.modified = now;
    m.next_state = no_capacity ? "off" : "ready";
    m.next_at = now + m_boot / 2;
    if (!no_capacity) {
        if (m.public_ip_type == "dynamic") m.public_ip = fresh_ip();
        real_boot(m);
    }
    auto &e = new_event(now, m.id, "start", m_boot / 2, no_capacity);
    return {{"data", machine_json(m)}, {"event", event_json(e)}};
}

json Account::stop(double now, const std::string &id) {
    advance(now);
    auto &m = find(id);
    if (m.state == "off") refuse(409, "This machine is already off.");
    if (m.state == "stopping") refuse(409, "This machine is currently stopping.");
    if (m.state == "starting" || m.state == "provisioning")
        refuse(409, "This machine is currently starting.");
    meter(m, now);
    m.state = "stopping";
    m.modified = now;
    m.next_state = "off";
    m.next_at = now + m_boot / 2;
    m.then_state.clear();
    m.then_at = 0;
    auto &e = new_event(now, m.id, "stop", m_boot / 2);
    return {{"data", machine_json(m)}, {"event", event_json(e)}};
}

json Account::restart(double now, const std::string &id) {
    advance(now);
    auto &m = find(id);
    if (m.state != "ready") refuse(409, "This machine is not running.");
    meter(m, now);
    m.state = "restarting";
    m.next_state = "ready";
    m.next_at = now + m_boot / 2;
    auto &e = new_event(now, m.id, "restart", m_boot / 2);
    return {{"data", machine_json(m)}, {"event", event_json(e)}};
}

json Account::remove(double now, const std::string &id) {
    advance(now);
    auto &m = find(id);
    if (m.state != "off")
        refuse(409, "Machine must be off before it can be deleted. Current state: " + m.state);
    meter(m, now);
    if (m_local && m.real) (void)m_local->destroy("ps-" + m.id);
    m.deleted = now;
    json before = machine_json(m);
    auto &e = new_event(now, m.id, "deactivate", 0);
    // Its dynamic address goes with it; a static one stays claimed (and billed) until released.
    for (auto &[ip, x] : m_ips)
        if (x.machine == m.id) x.machine.clear();
    for (auto &[sid, s] : m_scripts)
        s.machines.erase(std::remove(s.machines.begin(), s.machines.end(), m.id), s.machines.end());
    m_gone_bill[m.id] = m.rent + m.disk + m.ip;
    m_machines.erase(id);
    return {{"data", before}, {"event", event_json(e)}};
}

json Account::event(double now, const std::string &id) {
    advance(now);
    auto it = m_events.find(id);
    if (it == m_events.end()) refuse(404, "Not found");
    return event_json(it->second);
}

std::vector<json> Account::events(double now, const std::string &machine_id) {
    advance(now);
    std::vector<json> out;
    for (auto it = m_event_order.rbegin(); it != m_event_order.rend(); ++it) {
        const auto &e = m_events.at(*it);
        if (machine_id.empty() || e.machine_id == machine_id) out.push_back(event_json(e));
    }
    return out;
}

json Account::script_json(const Script &s) const {
    return {{"id", s.id},
            {"name", s.name},
            {"description", s.description.empty() ? json() : json(s.description)},
            {"isEnabled", s.enabled},
            {"isRunOnce", s.run_once},
            {"assignedMachineIds", s.machines},
            {"dtCreated", iso(s.created)},
            {"dtDeleted", s.deleted > 0 ? json(iso(s.deleted)) : json()}};
}

std::vector<json> Account::scripts() const {
    std::vector<json> out;
    for (const auto &[id, s] : m_scripts)
        if (s.deleted == 0) out.push_back(script_json(s));
    return out;
}

json Account::script(const std::string &id) const {
    auto it = m_scripts.find(id);
    if (it == m_scripts.end() || it->second.deleted > 0) refuse(404, "Not found");
    return script_json(it->second);
}

json Account::create_script(double now, const json &b) {
    if (!b.is_object() || !b.contains("name") || !b["name"].is_string() || !b.contains("script") ||
        !b["script"].is_string())
        refuse(400, "name and script are required");
    Script s;
    s.id = new_id("ss", 7);
    s.name = b["name"];
    s.script = b["script"];
    if (s.script.size() > 64 * 1024) refuse(413, "Script too large");
    s.run_once = b.contains("isRunOnce") && b["isRunOnce"].is_boolean() && b["isRunOnce"];
    if (b.contains("description") && b["description"].is_string()) s.description = b["description"];
    s.created = now;
    m_scripts[s.id] = s;
    return script_json(s);
}

json Account::update_script(const std::string &id, const json &b) {
    auto it = m_scripts.find(id);
    if (it == m_scripts.end() || it->second.deleted > 0) refuse(404, "Not found");
    auto &s = it->second;
    if (b.contains("name") && b["name"].is_string()) s.name = b["name"];
    if (b.contains("script") && b["script"].is_string()) s.script = b["script"];
    if (b.contains("isRunOnce") && b["isRunOnce"].is_boolean()) s.run_once = b["isRunOnce"];
    if (b.contains("isEnabled") && b["isEnabled"].is_boolean()) s.enabled = b["isEnabled"];
    return script_json(s);
}

json Account::delete_script(double now, const std::string &id) {
    auto it = m_scripts.find(id);
    if (it == m_scripts.end() || it->second.deleted > 0) refuse(404, "Not found");
    it->second.deleted = now;
    for (auto &[mid, m] : m_machines)
        if (m.startup_script == id) m.startup_script.clear();
    return script_json(it->second);
}

json Account::assign_script(const std::string &id, const json &b, bool assign) {
    auto it = m_scripts.find(id);
    if (it == m_scripts.end() || it->second.deleted > 0) refuse(404, "Not found");
    if (!b.is_object() || !b.contains("machineId") || !b["machineId"].is_string())
        refuse(400, "machineId is required");
    std::string mid = b["machineId"];
    auto &m = find(mid);
    auto &list = it->second.machines;
    list.erase(std::remove(list.begin(), list.end(), mid), list.end());
    if (assign) {
        list.push_back(mid);
        m.startup_script = id;
    } else if (m.startup_script == id) {
        m.startup_script.clear();
    }
    return script_json(it->second);
}

std::vector<json> Account::ips(double now) const {
    (void)now;
    std::vector<json> out;
    for (const auto &[ip, x] : m_ips)
        out.push_back({{"ip", ip},
                       {"region", x.region},
                       {"assignedMachineId", x.machine.empty() ? json() : json(x.machine)},
                       {"dtCreated", iso(x.claimed)}});
    return out;
}

json Account::claim_ip(double now, const json &b) {
    advance(now);
    if (!b.is_object() || !b.contains("region") || !b["region"].is_string())
        refuse(400, "region is required");
    Ip x{fresh_ip(), region_code(b["region"]), "", now, now, 0};
    m_ips[x.ip] = x;
    return {{"ip", x.ip}, {"region", x.region}, {"assignedMachineId", json()}};
}

json Account::assign_ip(double now, const std::string &ip, const json &b) {
    advance(now);
    auto it = m_ips.find(ip);
    if (it == m_ips.end()) refuse(404, "Not found");
    if (!b.is_object() || !b.contains("machineId")) refuse(400, "machineId is required");
    if (b["machineId"].is_null()) {
        it->second.machine.clear();
    } else {
        auto &m = find(b["machineId"].get<std::string>());
        it->second.machine = m.id;
        m.public_ip = ip;
        m.public_ip_type = "static";
    }
    return {{"ip", ip},
            {"region", it->second.region},
            {"assignedMachineId", it->second.machine.empty() ? json() : json(it->second.machine)}};
}

json Account::release_ip(double now, const std::string &ip) {
    advance(now);
    auto it = m_ips.find(ip);
    if (it == m_ips.end()) refuse(404, "Not found");
    for (auto &[id, m] : m_machines)
        if (m.public_ip == ip) m.public_ip.clear();
    it->second.dollars += (now - it->second.billed_since) / 3600.0 * m_ip_rate;
    m_gone_bill["ip " + ip] = it->second.dollars;
    m_ips.erase(it);
    return {{"ip", ip}};
}

json Account::bill(double now) {
    advance(now);
    json per = json::object();
    double total = 0;
    for (const auto &[id, v] : m_gone_bill) {
        per[id] = v;
        total += v;
    }
    for (auto &[id, m] : m_machines) {
        double v = m.rent + m.disk + m.ip;
        per[id] = v;
        total += v;
    }
    for (auto &[ip, x] : m_ips) {
        double v = x.dollars + (now - x.billed_since) / 3600.0 * m_ip_rate;
        per["ip " + ip] = v;
        total += v;
    }
    return {{"total", total}, {"items", per}};
}

} // namespace ps
