#include "provider/paperspace/paperspace_provider.hpp"

#include "core/json_read.hpp"
#include "util/backoff.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <cmath>
#include <thread>

namespace berth {

using nlohmann::json;
namespace pss = paperspace;

PaperspaceProvider::PaperspaceProvider(pss::Credentials c, HttpSender send, HttpSender send_once)
    : m_creds(std::move(c)), m_send(std::move(send)), m_send_once(std::move(send_once)) {}

Capabilities paperspace_capabilities() {
    Capabilities c;
    c.billed = true;
    c.stop_keeps_disk = true;
    c.bootstrap_over_ssh = true;
    c.lists_machines = true;
    c.filters_offers = false;
    c.offers_need_credentials = true;
    c.key_arrives_late = true; // by a startup script that runs as the machine boots
    c.workdir = "/home/paperspace/work";
    c.destroy_loses = {"home/paperspace"};
    c.self_stop = "api";
    c.poll_interval = std::chrono::milliseconds(1000);
    c.storage_note = "the whole disk (kept across stop/start until destroy; your environment "
                     "persists in ~/work/.berth)";
    c.stop_note = "the disk is kept and bills storage (and a static IP, if any)";
    c.destroy_note = "nothing bills any more";
    return c;
}

Capabilities PaperspaceProvider::capabilities() const {
    return paperspace_capabilities();
}

Result<json> PaperspaceProvider::call(const std::string &method, const std::string &path,
                                      const json &body, const std::string &what, bool once) {
    auto r = (once ? m_send_once : m_send)(pss::request(m_creds, method, path, body));
    if (!r)
        return fail(r.error().kind, "Paperspace " + what + ": " + r.error().what, "retry later");
    return pss::parse(*r, what);
}

// Every page of a list: ?limit=120, then ?after=nextPage while hasMore.
Result<std::vector<json>> PaperspaceProvider::all(const std::string &path,
                                                  const std::string &what) {
    std::vector<json> out;
    std::string after;
    char sep = path.find('?') == std::string::npos ? '?' : '&';
    for (int page = 0; page < 1000; ++page) {
        std::string p = path + sep + "limit=120" + (after.empty() ? "" : "&after=" + after);
        auto j = call("GET", p, nullptr, what);
        if (!j) return tl::unexpected(j.error());
        if (!j->is_object() || !j->contains("items") || !(*j)["items"].is_array())
            return fail(ErrorKind::malformed,
                        "Paperspace answered " + what + " without a list of items",
                        "retry later; nothing was changed");
        for (const auto &x : (*j)["items"]) {
            if (!x.is_object())
                return fail(ErrorKind::malformed,
                            "Paperspace answered " + what + " with an item that is not an object",
                            "retry later; nothing was changed");
            out.push_back(x);
        }
        if (!j->value("hasMore", false)) return out;
        std::string next = jsonr::text(*j, "nextPage", "", 256);
        if (next.empty() || next == after ||
            next.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                   "-_=.") != std::string::npos)
            return fail(ErrorKind::malformed,
                        "Paperspace answered " + what + " with a bad nextPage", "retry later");
        after = next;
    }
    return fail(ErrorKind::malformed, "Paperspace's " + what + " does not end", "retry later");
}

Result<std::vector<json>> PaperspaceProvider::templates() {
    return all("/os-templates", "the OS templates");
}

Result<std::optional<Provider::Standing>> PaperspaceProvider::standing() {
    auto s = call("GET", "/billing/account-standing", nullptr, "the account standing");
    if (!s) return tl::unexpected(s.error());
    if (!s->is_object())
        return fail(ErrorKind::malformed, "Paperspace answered the account "
                                          "standing with something else");
    Standing out;
    out.good = s->value("isInGoodStanding", false) && !s->value("isAdminLocked", false);
    if (s->contains("messages") && (*s)["messages"].is_array())
        for (const auto &m : (*s)["messages"])
            if (m.is_string()) out.why += (out.why.empty() ? "" : "; ") + jsonr::clean_line(m, 160);
    if (s->value("isAdminLocked", false) && out.why.empty()) out.why = "locked by Paperspace";
    return std::optional<Standing>(out);
}

Result<> PaperspaceProvider::check_standing() {
    auto s = standing();
    if (!s) return tl::unexpected(s.error());
    if (!*s || (*s)->good) return {};
    return fail(ErrorKind::refused,
                "the Paperspace account is not in good standing" +
                    ((*s)->why.empty() ? "" : ": " + (*s)->why),
                "fix billing at https://console.paperspace.com", 1);
}

namespace {

bool runs(const json &t, const std::string &label) {
    if (!t.contains("availableMachineTypes") || !t["availableMachineTypes"].is_array())
        return false;
    for (const auto &a : t["availableMachineTypes"])
        if (a.is_object() && a.value("isAvailable", false) && a.contains("machineTypeLabel") &&
            a["machineTypeLabel"].is_string() &&
            pss::find_type(a["machineTypeLabel"].get<std::string>()) == pss::find_type(label))
            return true;
    return false;
}

// The template a type boots by default: ML-in-a-Box (CUDA, Python, Jupyter) for GPUs, plain
// Ubuntu 22.04 for CPUs; else any Linux template that runs it.
std::string default_template(const std::vector<json> &ts, const pss::MachineType &t) {
    std::vector<std::string> prefer =
        t.gpu_count ? std::vector<std::string>{"mliab-u22", "prod-u22-gpu", "prod-u20-gpu"}
                    : std::vector<std::string>{"prod-u22-cpu", "prod-u20-cpu"};
    for (const auto &p : prefer)
        for (const auto &x : ts)
            if (jsonr::text(x, "name", "", 80).rfind(p, 0) == 0 && runs(x, t.label))
                return jsonr::text(x, "id", "", 40);
    for (const auto &x : ts)
        if (runs(x, t.label)) return jsonr::text(x, "id", "", 40);
    return {};
}

std::string offer_id(const pss::MachineType &t, const std::string &region) {
    return t.label + "@" + region;
}

} // namespace

Result<std::vector<Offer>> PaperspaceProvider::offers(const json &) {
    auto ts = templates();
    if (!ts) return tl::unexpected(ts.error());
    std::vector<Offer> out;
    for (const auto &t : pss::machine_types()) {
        std::string tmpl = default_template(*ts, t);
        if (tmpl.empty()) continue; // no template runs it now
        for (const auto &region : t.regions) {
            Offer o;
            o.provider = "paperspace";
            o.id = offer_id(t, region);
            o.gpu_name = t.gpu_count ? t.gpu_name : "none";
            o.gpu_count = t.gpu_count;
            o.vram_gb = t.gpu_memory_gb;
            // Rent while running: the machine and its dynamic public IP.
            o.price_per_hour = t.price_per_hour + pss::public_ip_per_hour;
            double disk = pss::disk_per_hour(50);
            o.total_per_hour = o.price_per_hour + disk;
            o.storage_per_gb_month = disk * 730 / 50;
            o.reliability = 1;
            o.location = region;
            o.raw = {{"machineType", t.label},       {"region", region},
                     {"templateId", tmpl},           {"cpu_cores", t.vcpus},
                     {"cpu_ram", t.ram_gb * 1024},   {"disk_space", 50},
                     {"dph_total", o.total_per_hour}};
            out.push_back(o);
        }
    }
    return out;
}

namespace {

std::string opt_or(const Options &o, const char *k, const std::string &def) {
    auto it = o.find(k);
    return it == o.end() ? def : it->second;
}

} // namespace

Result<UpPlan> PaperspaceProvider::plan(InstanceSpec spec, const Options &opt) {
    std::string type_label = opt_or(opt, "machine-type", "");
    std::string region = opt_or(opt, "region", "");
    if (auto o = opt_or(opt, "offer", ""); !o.empty()) {
        auto at = o.find('@');
        if (at == std::string::npos)
            return fail(ErrorKind::user, "bad offer id '" + jsonr::clean_line(o, 40) + "'",
                        "Paperspace offers are TYPE@REGION (see `berth offers --provider "
                        "paperspace`)",
                        2);
        type_label = o.substr(0, at);
        region = o.substr(at + 1);
    }
    if (type_label.empty())
        return fail(ErrorKind::user, "say which machine type to rent",
                    "pass --machine-type T (see `berth offers --provider paperspace`)", 2);
    const auto *t = pss::find_type(type_label);
    if (!t)
        return fail(ErrorKind::user,
                    "unknown Paperspace machine type '" + jsonr::clean_line(type_label, 40) + "'",
                    "see `berth offers --provider paperspace`", 2);
    if (region.empty()) region = t->regions.empty() ? "NY2" : t->regions.front();
    std::string code = pss::region_code(region);
    if (code.empty())
        return fail(ErrorKind::user,
                    "unknown Paperspace region '" + jsonr::clean_line(region, 40) + "'",
                    "NY2, CA1 or AMS1 (or East Coast (NY2), ...)", 2);
    if (std::find(t->regions.begin(), t->regions.end(), code) == t->regions.end())
        return fail(ErrorKind::user, t->label + " is not offered in " + code,
                    "it is in " + str::join(t->regions, ", "), 2);
    double disk = 50;
    if (auto d = opt_or(opt, "disk", ""); !d.empty()) {
        char *end = nullptr;
        disk = std::strtod(d.c_str(), &end);
        if (*end || !(disk >= 50) || disk > 2000)
            return fail(ErrorKind::user, "--disk needs a size from 50 to 2000 GB", "", 2);
    }
    BERTH_TRY(check_standing());
    std::string tmpl = opt_or(opt, "template", "");
    auto ts = templates();
    if (!ts) return tl::unexpected(ts.error());
    if (tmpl.empty()) tmpl = default_template(*ts, *t);
    const json *chosen = nullptr;
    for (const auto &x : *ts)
        if (jsonr::text(x, "id", "", 40) == tmpl) chosen = &x;
    if (tmpl.empty() || !chosen)
        return fail(ErrorKind::user, "no OS template " + (tmpl.empty() ? "runs " + t->label : tmpl),
                    "see `berth offers --provider paperspace`", 2);
    if (!runs(*chosen, t->label))
        return fail(ErrorKind::user, "template " + tmpl + " cannot run " + t->label,
                    "leave --template out to use one that can", 2);
    spec.offer_id = offer_id(*t, code);
    spec.image = tmpl;
    spec.disk_gb = disk;
    UpPlan plan{spec, {}, {}};
    char line[256];
    std::snprintf(line, sizeof line,
                  "renting a %s in %s (template %s, %.0f GB): $%.4f/h running + $%.4f/h disk%s",
                  t->label.c_str(), code.c_str(), tmpl.c_str(), disk,
                  t->price_per_hour + pss::public_ip_per_hour, pss::disk_per_hour(disk),
                  spec.max_hours > 0 ? "; Paperspace itself stops it after --max-hours" : "");
    plan.notes.push_back(line);
    return plan;
}

namespace {

// The run-once script that lets berth's key in (v1 has no key endpoint; SkyPilot does the same).
std::string key_script(const std::string &keys) {
    return "#!/bin/bash\nset -e\nu=paperspace\nh=$(getent passwd $u | cut -d: -f6)\n"
           "install -d -m 700 -o $u -g $u \"$h/.ssh\"\n"
           "cat >> \"$h/.ssh/authorized_keys\" <<'BERTH_KEYS'\n" +
           keys + (keys.empty() || keys.back() == '\n' ? "" : "\n") +
           "BERTH_KEYS\nchown $u:$u \"$h/.ssh/authorized_keys\"\nchmod 600 "
           "\"$h/.ssh/authorized_keys\"\n";
}

} // namespace

Result<MachineInfo> PaperspaceProvider::create(const InstanceSpec &spec) {
    auto at = spec.offer_id.find('@');
    if (at == std::string::npos) return fail("no machine type planned for '" + spec.name + "'");
    std::string machine_name = "berth-" + spec.name;
    for (const auto &k : str::split(spec.authorized_keys, '\n'))
        if (str::contains(k, "BERTH_KEYS")) return fail("a public key holds a bad line");
    auto script = call("POST", "/startup-scripts",
                       {{"name", machine_name + "-key"},
                        {"script", key_script(spec.authorized_keys)},
                        {"isRunOnce", true}},
                       "creating the key script", true);
    if (!script) return tl::unexpected(script.error());
    std::string script_id = jsonr::text(*script, "id", "", 40);
    json body{{"name", machine_name},
              {"machineType", spec.offer_id.substr(0, at)},
              {"templateId", spec.image},
              {"diskSize", spec.disk_gb > 0 ? spec.disk_gb : 50},
              {"region", spec.offer_id.substr(at + 1)},
              {"startupScriptId", script_id},
              {"publicIpType", "dynamic"},
              {"startOnCreate", true}};
    if (spec.max_hours > 0) {
        // The provider's own backstop: it stops the machine even if berth's agent died.
        body["autoShutdownEnabled"] = true;
        body["autoShutdownTimeout"] = std::max(1.0, std::ceil(spec.max_hours));
        body["autoShutdownForce"] = true;
    }
    Backoff backoff;
    std::string last;
    for (int attempt = 0; attempt < backoff.attempts(); ++attempt) {
        if (attempt > 0) {
            std::this_thread::sleep_for(backoff.next());
            // The last answer was lost or refused for load: was the machine made anyway?
            auto mine = all("/machines?name=" + machine_name, "the machine list");
            if (!mine) return tl::unexpected(mine.error());
            for (const auto &m : *mine)
                if (jsonr::text(m, "name", "", 80) == machine_name) return pss::to_machine(m);
        }
        auto r = m_send_once(pss::request(m_creds, "POST", "/machines", body));
        if (!r) {
            if (!transient(r.error())) return tl::unexpected(r.error());
            last = r.error().what;
            continue;
        }
        if (r->status == 429 || r->status >= 500) {
            last = "HTTP " + std::to_string(r->status);
            continue;
        }
        auto j = pss::parse(*r, "the creation of " + machine_name);
        if (!j) {
            (void)remove_key_script(machine_name);
            return tl::unexpected(j.error());
        }
        if (!j->contains("data") || !(*j)["data"].is_object())
            return fail(ErrorKind::malformed,
                        "Paperspace answered the creation of " + machine_name +
                            " without the machine",
                        "`berth ls --reconcile --provider paperspace` finds it if it was made");
        return pss::to_machine((*j)["data"]);
    }
    return fail("Paperspace did not answer the creation of " + machine_name + ": " + last,
                "retry later; `berth ls --reconcile` finds a machine made meanwhile");
}

Result<MachineInfo> PaperspaceProvider::describe(const std::string &id) {
    if (id.empty() ||
        id.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789") != std::string::npos)
        return fail(ErrorKind::user,
                    "bad Paperspace machine id '" + jsonr::clean_line(id, 40) + "'");
    auto j = call("GET", "/machines/" + id, nullptr, "machine " + id);
    if (!j) {
        if (j.error().kind == ErrorKind::not_found) {
            MachineInfo m;
            m.id = id;
            m.state = MachineState::gone;
            return m;
        }
        return tl::unexpected(j.error());
    }
    if (!j->is_object())
        return fail(ErrorKind::malformed,
                    "Paperspace answered machine " + id + " with something else");
    auto m = pss::to_machine(*j);
    if (m.state == MachineState::stopped) {
        // Off after a create or start whose event failed (no capacity): say so, at once.
        auto ev = call("GET", "/machine-events?machineId=" + id + "&limit=1", nullptr,
                       "machine " + id + "'s events");
        if (ev && ev->contains("items") && (*ev)["items"].is_array() && !(*ev)["items"].empty()) {
            const auto &e = (*ev)["items"][0];
            std::string name = jsonr::text(e, "name", "", 40), st = jsonr::text(e, "state", "", 40);
            if ((name == "create" || name == "start") && st == "error") {
                m.state = MachineState::exited;
                m.message = name + " failed: " + jsonr::text(e, "error", "no reason given", 200);
            }
        }
    }
    return m;
}

Result<> PaperspaceProvider::stop(const std::string &id) {
    // The request first (rent stops when Paperspace takes it), then wait for off: `berth
    // stop` returns once the machine is off. A machine still starting cannot stop yet
    // (409): asked again until it can.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    bool asked = false;
    for (;;) {
        if (!asked) {
            auto r = call("PATCH", "/machines/" + id + "/stop", nullptr, "stopping machine " + id);
            if (!r && r.error().kind == ErrorKind::not_found) return {};
            if (!r && r.error().kind != ErrorKind::conflict) return tl::unexpected(r.error());
            asked = bool(r);
        }
        auto j = call("GET", "/machines/" + id, nullptr, "machine " + id);
        if (!j && j.error().kind == ErrorKind::not_found) return {};
        if (!j) return tl::unexpected(j.error());
        std::string st = jsonr::text(*j, "state", "", 40);
        if (st == "off") return {};
        if (st == "stopping") asked = true;
        if (std::chrono::steady_clock::now() > deadline)
            return fail("machine " + id + " did not turn off within 10 minutes (" + st + ")",
                        "retry `berth stop`; it bills until it is off");
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
}

Result<> PaperspaceProvider::start(const std::string &id) {
    // A machine still stopping cannot start yet ("This machine is currently stopping."):
    // wait for it to be off first.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    for (;;) {
        auto j = call("GET", "/machines/" + id, nullptr, "machine " + id);
        if (!j) return tl::unexpected(j.error());
        std::string st = jsonr::text(*j, "state", "", 40);
        if (st == "ready" || st == "starting" || st == "provisioning") return {};
        if (st != "stopping") break;
        if (std::chrono::steady_clock::now() > deadline)
            return fail("machine " + id + " is still stopping after 5 minutes", "retry later");
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    auto r = call("PATCH", "/machines/" + id + "/start", nullptr, "starting machine " + id);
    // "This machine is currently starting." (or already running): it is on its way.
    if (!r && r.error().kind == ErrorKind::conflict) return {};
    if (!r) return tl::unexpected(r.error());
    return {};
}

Result<> PaperspaceProvider::remove_key_script(const std::string &machine_name) {
    auto ss = all("/startup-scripts", "the startup scripts");
    if (!ss) return tl::unexpected(ss.error());
    for (const auto &s : *ss)
        if (jsonr::text(s, "name", "", 80) == machine_name + "-key") {
            auto d = call("DELETE", "/startup-scripts/" + jsonr::text(s, "id", "", 40), nullptr,
                          "deleting the key script");
            if (!d && d.error().kind != ErrorKind::not_found) return tl::unexpected(d.error());
        }
    return {};
}

Result<> PaperspaceProvider::destroy(const std::string &id) {
    // Paperspace deletes only machines that are off: stop, wait for off, delete.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    std::string name;
    for (;;) {
        auto j = call("GET", "/machines/" + id, nullptr, "machine " + id);
        if (!j && j.error().kind == ErrorKind::not_found) return {};
        if (!j) return tl::unexpected(j.error());
        name = jsonr::text(*j, "name", "", 80);
        std::string st = jsonr::text(*j, "state", "", 40);
        if (st == "off") break;
        if (st == "ready" || st == "serviceready" || st == "restarting")
            BERTH_TRY(stop(id));
        else if (st == "starting" || st == "provisioning") {
            // Stopped as soon as it can be (a start cannot be interrupted).
        }
        if (std::chrono::steady_clock::now() > deadline)
            return fail("machine " + id + " did not turn off within 10 minutes (" + st + ")",
                        "retry `berth destroy`; it bills until it is deleted");
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    auto d = call("DELETE", "/machines/" + id, nullptr, "deleting machine " + id);
    if (!d && d.error().kind != ErrorKind::not_found) return tl::unexpected(d.error());
    if (name.rfind("berth-", 0) == 0) (void)remove_key_script(name);
    return {};
}

Result<> PaperspaceProvider::forget(const std::string &name) {
    return remove_key_script("berth-" + name);
}

// v1 has no key endpoint: a new run-once script with the key replaces berth's old one on the
// machine, and runs at its next boot (a machine has one startup script).
Result<> PaperspaceProvider::attach_key(const std::string &id, const std::string &public_key) {
    auto j = call("GET", "/machines/" + id, nullptr, "machine " + id);
    if (!j) return tl::unexpected(j.error());
    std::string name = jsonr::text(*j, "name", "", 80);
    if (name.rfind("berth-", 0) != 0)
        return fail("machine " + id + " is not berth's (its name is not berth-NAME)");
    for (const auto &k : str::split(public_key, '\n'))
        if (str::contains(k, "BERTH_KEYS")) return fail("a public key holds a bad line");
    BERTH_TRY(remove_key_script(name));
    auto script =
        call("POST", "/startup-scripts",
             {{"name", name + "-key"}, {"script", key_script(public_key)}, {"isRunOnce", true}},
             "creating the key script", true);
    if (!script) return tl::unexpected(script.error());
    std::string sid = jsonr::text(*script, "id", "", 40);
    auto a = call("POST", "/startup-scripts/" + sid + "/assign", {{"machineId", id}},
                  "assigning the key script to " + id);
    if (!a) return tl::unexpected(a.error());
    return {};
}

Result<std::vector<MachineInfo>> PaperspaceProvider::list() {
    auto ms = all("/machines", "the machine list");
    if (!ms) return tl::unexpected(ms.error());
    std::vector<MachineInfo> out;
    for (const auto &m : *ms)
        out.push_back(pss::to_machine(m));
    return out;
}

ProviderRow paperspace_provider_row() {
    ProviderRow row;
    row.name = "paperspace";
    row.summary = "Paperspace Core machines (key: PAPERSPACE_API_KEY or pspace's credentials)";
    row.capabilities = paperspace_capabilities();
    row.options = {
        {"machine-type", "the machine type (P4000, A4000, C5, ...; see `berth offers`)", "", false,
         false},
        {"offer", "an offer id from `berth offers` (TYPE@REGION)", "", false, false},
        {"region", "NY2, CA1 or AMS1 (default: the type's first)", ""},
        {"template", "the OS template id (default: ML-in-a-Box for GPUs, Ubuntu 22.04 for CPUs)",
         ""},
        {"disk", "GB of disk (50 to 2000)", "50"},
        {"api-key-file", "read the API key from this file (- for stdin)", "", false, false, true},
    };
    row.make = [](const ProviderContext &ctx) -> Result<std::unique_ptr<Provider>> {
        auto it = ctx.options.find("api-key-file");
        auto c = pss::load_credentials(it == ctx.options.end() ? "" : it->second);
        if (!c) return tl::unexpected(c.error());
        return std::unique_ptr<Provider>(new PaperspaceProvider(*c, ctx.send, ctx.send_once));
    };
    // On the machine: Paperspace has no per-machine credential, and a machine powered off
    // from inside turns `off` (disk kept). The reason stays in ~/.berth/stops.log.
    row.self_stop = [](const std::string &, const std::string &, const std::string &) -> Result<> {
        auto r = proc::run({"sudo", "-n", "/sbin/poweroff"},
                           {.input = {}, .env = {}, .timeout = std::chrono::seconds(30)});
        if (!r) return tl::unexpected(r.error());
        if (r->status != 0) return fail("poweroff failed: " + str::trim(r->err));
        return {};
    };
    return row;
}

} // namespace berth
