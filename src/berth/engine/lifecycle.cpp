#include "engine/lifecycle.hpp"
#include "engine/idle.hpp"

#include "core/exit_codes.hpp"
#include "core/json_read.hpp"
#include "engine/bootstrap.hpp"
#include "engine/ledger.hpp"
#include "util/crash.hpp"
#include "util/fs.hpp"
#include "util/interrupt.hpp"
#include "util/net.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <csignal>
#include <nlohmann/json.hpp>
#include <thread>

namespace berth {

Result<> validate_name(const std::string &name) {
    bool ok =
        !name.empty() && name.size() <= 40 && std::isalnum(static_cast<unsigned char>(name[0]));
    for (char c : name)
        ok = ok && (std::islower(static_cast<unsigned char>(c)) ||
                    std::isdigit(static_cast<unsigned char>(c)) || c == '-');
    if (!ok)
        return fail("bad instance name '" + name + "'",
                    "use lowercase letters, digits and dashes, starting with a letter or digit",
                    exit_code::usage);
    return {};
}

ssh::Target Engine::target_of(const InstanceRecord &r) {
    ssh::Target t{"berth-" + r.name, r.ssh_host, r.ssh_port, r.ssh_user};
    auto h = host_of(r);
    t.user_ssh = h.user_ssh;
    t.jump = h.jump;
    return t;
}

HostShape Engine::host_of(const InstanceRecord &r) {
    HostShape h;
    if (r.spec_json.find("\"host\"") == std::string::npos) return h;
    auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
    if (!spec.is_object() || !spec.contains("host") || !spec["host"].is_object()) return h;
    const auto &j = spec["host"];
    h.user_ssh = j.value("user_ssh", false);
    h.jump = jsonr::text(j, "jump", "", 256);
    h.agent_dir = jsonr::text(j, "agent_dir", "", 1024);
    h.workdir = jsonr::text(j, "workdir", "", 1024);
    h.store = jsonr::text(j, "store", "", 1024);
    h.link_home = j.value("link_home", false);
    return h;
}

std::string Engine::jupyter_url(const InstanceRecord &r) {
    return "http://127.0.0.1:" + std::to_string(r.tunnel_port) + "/?token=" + r.jupyter_token;
}

Result<InstanceRecord> Engine::find(const std::string &name) {
    auto r = m_db.get(name);
    if (!r) return tl::unexpected(r.error());
    if (*r && (*r)->status != Status::destroyed) return **r;
    auto all = m_db.list();
    std::vector<std::string> names;
    if (all)
        for (const auto &i : *all)
            if (i.status != Status::destroyed) names.push_back(i.name);
    auto near = str::closest(name, names);
    return fail("no instance named '" + name + "'", near ? "did you mean '" + *near + "'?"
                                                    : names.empty()
                                                        ? "create one with `berth up " + name + "`"
                                                        : "see `berth ls`");
}

Result<FileLock> lock_instance(const std::string &name) {
    auto dir = ssh::berth_dir() / "locks";
    BERTH_TRY(fs::make_dirs(dir, 0700));
    auto l = FileLock::acquire(dir / (name + ".lock"));
    if (!l)
        return fail(ErrorKind::conflict,
                    "another berth is working on '" + name + "' (" + l.error().what + ")",
                    "wait for it to finish, or see `berth status " + name + "`", exit_code::busy);
    return l;
}

Result<std::unique_ptr<Provider>> Engine::provider_of(const InstanceRecord &r, const Options &opt) {
    // What the provider asked to be given again for this machine (a cluster's login host).
    Options all = opt;
    if (r.spec_json.find("\"options\"") != std::string::npos) {
        auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
        if (spec.is_object() && spec.contains("options") && spec["options"].is_object())
            for (const auto &[k, v] : spec["options"].items())
                if (v.is_string() && !all.count(k)) all[k] = v.get<std::string>();
    }
    return m_registry.make(r.provider, all);
}

Result<> Engine::check_interrupt(const std::string &step) {
    if (!interrupt::requested()) return {};
    return fail(ErrorKind::interrupted, "interrupted " + step, "", exit_code::interrupted);
}

namespace {

// The newest intent of an instance still pending, if any.
std::optional<Intent> pending_intent(StateDb &db, const std::string &name) {
    auto all = db.intents(name);
    if (!all) return std::nullopt;
    for (auto it = all->rbegin(); it != all->rend(); ++it)
        if (it->state == "pending") return *it;
    return std::nullopt;
}

bool transitional(Status s) {
    return s == Status::creating || s == Status::destroying || s == Status::starting ||
           s == Status::stopping;
}

} // namespace

Result<> Engine::refresh_ssh_config() {
    auto all = m_db.list();
    if (!all) return tl::unexpected(all.error());
    std::vector<ssh::Target> targets;
    for (const auto &r : *all)
        if (r.status != Status::destroyed && r.ssh_port > 0) targets.push_back(target_of(r));
    return ssh::write_config(targets);
}

static Status status_from(MachineState s) {
    switch (s) {
    case MachineState::provisioning:
    case MachineState::loading:
        return Status::loading;
    case MachineState::running:
        return Status::running;
    case MachineState::stopped:
    case MachineState::exited:
        return Status::stopped;
    case MachineState::gone:
        return Status::destroyed;
    }
    return Status::failed;
}

InstanceRecord Engine::refresh(InstanceRecord r) {
    if (r.status == Status::destroyed) return r;
    if (auto pend = pending_intent(m_db, r.name)) {
        auto resolved = resolve(r);
        if (!resolved) {
            r.message = resolved.error().what;
            return r;
        }
        r = *resolved;
        if (r.status == Status::destroyed) return r;
    }
    auto p = provider_of(r);
    if (!p) return r;
    auto m = (*p)->describe(r.provider_id);
    if (!m) {
        r.message = m.error().what;
        return r;
    }
    note_meters(r, *m);
    Status s = status_from(m->state);
    // Mid-transition states are the engine's own while a berth works on them; the
    // provider's word wins once it settles.
    if (s != r.status && !transitional(r.status)) {
        r.status = s;
        r.message = m->message.empty() ? std::string(machine_state_name(m->state)) : m->message;
        if (s == Status::stopped) close_tunnel(r);
        (void)m_db.put(r);
    }
    return r;
}

Result<InstanceRecord> Engine::resolve(InstanceRecord r) {
    if (r.status == Status::destroyed) return r;
    auto pend = pending_intent(m_db, r.name);
    if (!pend) return r;
    auto lock = lock_instance(r.name);
    if (!lock) return r; // another berth is working on it now
    // Read again under the lock: the holder may have finished meanwhile.
    auto cur = m_db.get(r.name);
    if (!cur) return tl::unexpected(cur.error());
    if (!*cur) return r;
    r = **cur;
    pend = pending_intent(m_db, r.name);
    if (!pend || r.status == Status::destroyed) return r;
    auto p = provider_of(r);
    if (!p) return tl::unexpected(p.error());
    if (pend->action == "create") {
        m_progress("'" + r.name + "': its `berth up` was interrupted; undoing it");
        auto rb = rollback(r, **p, Error{"interrupted"});
        (void)m_db.finish(pend->id, false,
                          rb ? "interrupted; undone"
                             : "interrupted; undo failed: " + rb.error().what);
        return rb;
    }
    if (pend->action == "destroy") {
        m_progress("'" + r.name + "': finishing an interrupted destroy");
        (void)m_db.finish(pend->id, false, "interrupted");
        BERTH_TRY(destroy_locked(r, **p));
        auto again = m_db.get(r.name);
        if (again && *again) return **again;
        return r;
    }
    // stop/start: nothing to undo; the provider's word is the state.
    (void)m_db.finish(pend->id, false, "interrupted");
    auto m = (*p)->describe(r.provider_id);
    if (m) {
        r.status = status_from(m->state);
        r.message = "its `berth " + pend->action + "` was interrupted; the provider says " +
                    machine_state_name(m->state);
        BERTH_TRY(m_db.put(r));
    }
    return r;
}

// The ledger follows what the provider says: storage from the moment the machine exists,
// rent from the moment it runs (the provider's clock), each closed when that stops.
void Engine::note_meters(const InstanceRecord &r, const MachineInfo &m) {
    double now = epoch_now();
    if (r.provider_id.empty()) return;
    if (m.state == MachineState::gone) {
        (void)m_db.meter_close(r.provider, r.provider_id, "", now);
        return;
    }
    if (m.transfer_cost > 0)
        (void)m_db.meter_transfer(
            {r.name, r.provider, r.provider_id, "transfer", 0, 0, 0, m.transfer_cost});
    if (m.storage_per_hour > 0)
        (void)m_db.meter_open({r.name, r.provider, r.provider_id, "storage", m.storage_per_hour,
                               m.created_at > 0 ? m.created_at : now});
    if (m.state == MachineState::running && m.rent_per_hour > 0)
        (void)m_db.meter_open({r.name, r.provider, r.provider_id, "rent", m.rent_per_hour,
                               m.running_since > 0 ? std::min(m.running_since, now) : now});
    if (m.state == MachineState::stopped || m.state == MachineState::exited)
        (void)m_db.meter_close(r.provider, r.provider_id, "rent", now);
}

// A machine whose provider does not tell its host key: trust on first use, pinned from then
// on under the instance's alias (never StrictHostKeyChecking=no).
static Result<std::string> scan_host_key(const std::string &host, int port) {
    std::string last;
    for (int i = 0; i < 20 && !interrupt::requested(); ++i) {
        auto r =
            proc::run({"ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", std::to_string(port), host},
                      {.input = {}, .env = {}, .timeout = std::chrono::seconds(15)});
        if (r && r->status == 0)
            for (const auto &line : str::split(r->out, '\n')) {
                auto parts = str::split(str::trim(line), ' ');
                if (parts.size() >= 3 && parts[1] == "ssh-ed25519")
                    return parts[1] + " " + parts[2];
            }
        last = r ? str::trim(r->err) : r.error().what;
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return fail(ErrorKind::network, "no SSH host key from " + host + ":" + std::to_string(port) +
                                        (last.empty() ? "" : ": " + last));
}

void Engine::close_tunnel(InstanceRecord &r) {
    if (r.tunnel_pid && ssh::is_ssh_process(r.tunnel_pid)) ::kill(r.tunnel_pid, SIGTERM);
    r.tunnel_pid = 0;
    r.tunnel_port = 0;
}

Result<InstanceRecord> Engine::bootstrap(InstanceRecord r, Provider &p) {
    auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
    BootstrapPlan plan;
    plan.workdir = p.capabilities().workdir;
    plan.max_hours = jsonr::num(spec, "max_hours");
    plan.api_url = p.api_url();
    plan.provider = p.name();
    plan.label = berth_label(r.name);
    auto host = host_of(r);
    if (!host.workdir.empty()) plan.workdir = host.workdir;
    plan.store = host.store;
    plan.agent_dir = host.agent_dir;
    plan.link_home = host.agent_dir.empty() || host.link_home;
    if (spec.is_object() && spec.contains("idle") && spec["idle"].is_object()) {
        const auto &i = spec["idle"];
        plan.idle_seconds = static_cast<long>(jsonr::num(i, "seconds"));
        plan.thresholds.cpu_percent = jsonr::num(i, "cpu_percent", plan.thresholds.cpu_percent);
        plan.thresholds.network_kbps = jsonr::num(i, "network_kbps", plan.thresholds.network_kbps);
        plan.thresholds.gpu_percent = jsonr::num(i, "gpu_percent", plan.thresholds.gpu_percent);
    }
    auto b = bootstrap_over_ssh(target_of(r), plan, m_progress);
    if (!b) return tl::unexpected(b.error());
    r.jupyter_port = b->jupyter_port;
    r.jupyter_token = b->jupyter_token;
    return r;
}

Result<InstanceRecord> Engine::ensure_tunnel(InstanceRecord r) {
    if (r.tunnel_pid && ssh::is_ssh_process(r.tunnel_pid) &&
        net::connectable("127.0.0.1", r.tunnel_port, std::chrono::milliseconds(300)))
        return r;
    close_tunnel(r);
    auto p = provider_of(r);
    if (!p) return tl::unexpected(p.error());
    bool bare = (*p)->capabilities().bootstrap_over_ssh;
    // A machine that just came back (resumed, rebooted) may be reported running before its
    // sshd answers: wait for the banner, not just an open port (a proxy accepts and closes).
    auto t = target_of(r);
    // (A host of the user's own may be an alias behind a ProxyJump: ssh itself reaches it.)
    if (!t.user_ssh && t.jump.empty() &&
        !net::wait_ssh(t.host, t.port, std::chrono::seconds(60), nullptr, interrupt::requested)) {
        BERTH_TRY(check_interrupt("while reaching '" + r.name + "'"));
        return fail(ErrorKind::network,
                    "no SSH server answers for '" + r.name + "' at " + t.host + ":" +
                        std::to_string(t.port),
                    "see `berth status " + r.name + "`");
    }
    for (int attempt = 0; attempt < 3; ++attempt) {
        if (r.jupyter_port == 0 && bare && r.status == Status::running) {
            // No Jupyter known (a record rebuilt by reconcile, a machine that restarted): the
            // agent prepares the machine (idempotent: a Jupyter that answers is reused).
            auto b = bootstrap(r, **p);
            if (!b) return b;
            r = *b;
        }
        auto port = net::free_loopback_port();
        if (!port) return tl::unexpected(port.error());
        auto pid = ssh::start_tunnel(target_of(r), *port, r.jupyter_port);
        if (!pid) return tl::unexpected(pid.error());
        if (bare && attempt == 0) {
            // A rented machine may have restarted on its own (outbid and resumed, rebooted by
            // its host): its Jupyter is gone. Ask through the tunnel; bootstrap if silent.
            auto st = net::http_status("127.0.0.1", *port, "/api/status?token=" + r.jupyter_token,
                                       std::chrono::milliseconds(3000));
            if (!st || *st != 200) {
                ::kill(*pid, SIGTERM);
                r.jupyter_port = 0;
                continue;
            }
        }
        r.tunnel_port = *port;
        r.tunnel_pid = *pid;
        BERTH_TRY(m_db.put(r));
        return r;
    }
    return fail("Jupyter on '" + r.name + "' does not answer through the tunnel",
                "see `berth ssh " + r.name + " -- cat ~/.berth/jupyter.log`");
}

Result<InstanceRecord> Engine::wait_running(InstanceRecord r, Provider &p,
                                            std::chrono::seconds timeout) {
    auto caps = p.capabilities();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string last;
    for (;;) {
        BERTH_TRY(check_interrupt("while waiting for '" + r.name + "'"));
        auto m = p.describe(r.provider_id);
        if (!m && !transient(m.error())) return tl::unexpected(m.error());
        if (m) {
            note_meters(r, *m);
            if (m->message != last && !m->message.empty()) {
                m_progress(m->message);
                last = m->message;
            }
            if (m->state == MachineState::running) {
                r.ssh_host = m->ssh.host;
                r.ssh_port = m->ssh.port;
                r.ssh_user = m->ssh.user;
                if (!m->ssh.host_key.empty()) r.host_key = m->ssh.host_key;
                r.jupyter_port = m->jupyter_port;
                r.jupyter_token = m->jupyter_token;
                break;
            }
            if (m->state == MachineState::stopped || m->state == MachineState::exited ||
                m->state == MachineState::gone)
                return fail(ErrorKind::refused,
                            "instance '" + r.name + "' did not start: " +
                                (m->message.empty() ? machine_state_name(m->state) : m->message),
                            "see `berth status " + r.name + "`");
        }
        if (std::chrono::steady_clock::now() > deadline)
            return fail(ErrorKind::timeout,
                        "instance '" + r.name + "' was not ready after " +
                            std::to_string(timeout.count()) + " s" +
                            (last.empty() ? std::string() : " (" + last + ")"),
                        "see `berth status " + r.name + "`");
        std::this_thread::sleep_for(caps.poll_interval);
    }
    if (r.ssh_port <= 0 || r.ssh_port > 65535 || r.ssh_host.empty())
        return fail(ErrorKind::malformed,
                    "the provider says '" + r.name + "' runs but gives no SSH endpoint");
    auto c = m_connect ? m_connect(r, p) : connect(r, p);
    if (!c) return c;
    r = *c;
    BERTH_TRY(check_interrupt("while opening the tunnel to '" + r.name + "'"));
    r.status = Status::running;
    r.message = "ready";
    BERTH_TRY(m_db.put(r));
    return r;
}

Result<InstanceRecord> Engine::connect(InstanceRecord r, Provider &p) {
    auto caps = p.capabilities();
    auto target = target_of(r);
    if (target.user_ssh) {
        // The user's own host: the user's known_hosts is the trust, as for their own ssh.
    } else if (r.host_key.empty()) {
        auto k = scan_host_key(r.ssh_host, r.ssh_port);
        BERTH_TRY(check_interrupt("while reaching '" + r.name + "'"));
        if (!k) return tl::unexpected(k.error());
        r.host_key = *k;
        m_progress("pinned the machine's host key " + str::split(*k, ' ').back().substr(0, 16) +
                   "... (first use)");
    }
    if (!target.user_ssh) BERTH_TRY(ssh::pin_host_key(target.alias, r.host_key));
    BERTH_TRY(m_db.put(r));
    BERTH_TRY(refresh_ssh_config());
    m_progress("checking SSH as " + r.ssh_user + "@" + r.ssh_host + ":" +
               std::to_string(r.ssh_port));
    auto ready = ssh::wait_ready(target, std::chrono::seconds(60), caps.key_arrives_late);
    BERTH_TRY(check_interrupt("while reaching '" + r.name + "'"));
    if (!ready) return tl::unexpected(ready.error());
    if (r.jupyter_port == 0 && caps.bootstrap_over_ssh) {
        // The machine came up bare (a rented container): berth's agent prepares it.
        auto b = bootstrap(r, p);
        BERTH_TRY(check_interrupt("while preparing '" + r.name + "'"));
        if (!b) return b;
        r = *b;
        BERTH_TRY(m_db.put(r));
    }
    m_progress("opening the Jupyter tunnel");
    return ensure_tunnel(r);
}

// Undoes an up: every machine that is this record's (by id, and by label where the
// provider lists machines) is destroyed and confirmed gone; then the record is destroyed.
// A record for which nothing was ever created is removed.
Result<InstanceRecord> Engine::rollback(InstanceRecord r, Provider &p, const Error &why) {
    close_tunnel(r);
    std::vector<std::string> ids;
    if (!r.provider_id.empty()) ids.push_back(r.provider_id);
    if (p.capabilities().lists_machines) {
        auto machines = p.list();
        if (!machines)
            return fail(machines.error().kind,
                        "cannot look for machines '" + r.name + "' left: " + machines.error().what,
                        "run `berth ls` again later: it finishes the undo");
        auto all = m_db.list();
        for (const auto &m : *machines) {
            if (name_from_label(m.label) != r.name || m.state == MachineState::gone) continue;
            bool other = false; // a reconciled namesake ("NAME-ID") owns it
            if (all)
                for (const auto &o : *all)
                    other = other || (o.name != r.name && o.provider == r.provider &&
                                      o.provider_id == m.id && o.status != Status::destroyed);
            if (!other && std::find(ids.begin(), ids.end(), m.id) == ids.end()) ids.push_back(m.id);
        }
    }
    for (const auto &id : ids) {
        InstanceRecord one = r;
        one.provider_id = id;
        m_progress("destroying " + r.provider + " instance " + id + " (" + why.what + ")");
        BERTH_TRY(confirm_destroyed(one, p, "destroyed: " + why.what));
    }
    if (auto f = p.forget(r.name); !f)
        m_progress("could not remove what '" + r.name + "' left at " + r.provider +
                   " (nothing of it bills): " + f.error().what);
    if (ids.empty()) {
        BERTH_TRY(m_db.remove(r.name));
    } else {
        r.status = Status::destroyed;
        r.message = "destroyed: " + why.what;
        BERTH_TRY(m_db.put(r));
    }
    r.status = Status::destroyed;
    (void)ssh::unpin("berth-" + r.name);
    (void)refresh_ssh_config();
    return r;
}

// Destroys one machine and returns once the provider shows it gone.
Result<> Engine::confirm_destroyed(InstanceRecord &r, Provider &p, const std::string &message) {
    // The last byte counts before the machine and its counters are gone.
    if (auto last = p.describe(r.provider_id)) note_meters(r, *last);
    double t = epoch_now();
    BERTH_TRY(p.destroy(r.provider_id));
    auto m = p.describe(r.provider_id);
    if (!m || m->state != MachineState::gone)
        return fail(m ? ErrorKind::conflict : m.error().kind,
                    "instance " + r.provider_id + " of '" + r.name +
                        "' is not confirmed gone after destroy" +
                        (m ? "" : " (" + m.error().what + ")"),
                    "retry `berth destroy " + r.name + "`");
    (void)m_db.meter_close(r.provider, r.provider_id, "", t);
    r.message = message;
    return {};
}

Result<InstanceRecord> Engine::up(const UpRequest &req, const PlanFn &on_plan) {
    BERTH_TRY(validate_name(req.name));
    auto lock = lock_instance(req.name);
    if (!lock) return tl::unexpected(lock.error());
    auto existing = m_db.get(req.name);
    if (!existing) return tl::unexpected(existing.error());
    if (*existing && (*existing)->status != Status::destroyed) {
        lock = FileLock(); // resolve takes it itself
        auto now = resolve(**existing);
        if (!now) return tl::unexpected(now.error());
        lock = lock_instance(req.name);
        if (!lock) return tl::unexpected(lock.error());
        if (now->status != Status::destroyed)
            return fail(ErrorKind::conflict,
                        "instance '" + req.name + "' already exists (" + status_name(now->status) +
                            ")",
                        "`berth start " + req.name + "`, or pick another name");
    }
    auto p = m_registry.make(req.provider, req.options);
    if (!p) return tl::unexpected(p.error());
    auto pub = ssh::ensure_key();
    if (!pub) return tl::unexpected(pub.error());
    InstanceSpec spec;
    spec.name = req.name;
    spec.max_hours = req.max_hours;
    spec.authorized_keys = *pub + "\n";
    spec.idle_seconds = req.idle_seconds >= 0         ? req.idle_seconds
                        : (*p)->capabilities().billed ? 3600
                                                      : 0;
    spec.idle_thresholds = req.idle_thresholds;
    spec.label = berth_label(req.name);
    auto plan = (*p)->plan(spec, req.options);
    if (!plan) return tl::unexpected(plan.error());
    if (on_plan) on_plan(*plan);
    BERTH_TRY(check_interrupt("before creating '" + req.name + "'"));

    InstanceRecord r;
    r.name = req.name;
    r.provider = req.provider;
    r.status = Status::creating;
    nlohmann::json spec_json{{"max_hours", req.max_hours},
                             {"label", plan->spec.label},
                             {"idle",
                              {{"seconds", plan->spec.idle_seconds},
                               {"cpu_percent", plan->spec.idle_thresholds.cpu_percent},
                               {"network_kbps", plan->spec.idle_thresholds.network_kbps},
                               {"gpu_percent", plan->spec.idle_thresholds.gpu_percent}}}};
    if (!plan->spec.offer_id.empty()) spec_json["offer_id"] = plan->spec.offer_id;
    if (!plan->spec.image.empty()) spec_json["image"] = plan->spec.image;
    if (plan->spec.disk_gb > 0) spec_json["disk_gb"] = plan->spec.disk_gb;
    if (plan->spec.bid) spec_json["bid"] = *plan->spec.bid;
    if (!plan->spec.remember.empty()) spec_json["options"] = plan->spec.remember;
    if (plan->spec.user_ssh || !plan->spec.agent_dir.empty())
        spec_json["host"] = {
            {"user_ssh", plan->spec.user_ssh},   {"jump", plan->spec.ssh_jump},
            {"agent_dir", plan->spec.agent_dir}, {"workdir", plan->spec.host_workdir},
            {"store", plan->spec.host_store},    {"link_home", plan->spec.host_link_home}};
    r.spec_json = spec_json.dump();
    BERTH_TRY(m_db.put(r)); // intent before action: the record, then the pending create
    auto intent = m_db.intend(r.name, "create", req.provider);
    if (!intent) return tl::unexpected(intent.error());
    m_progress("creating '" + r.name + "' on " + req.provider);
    auto m = (*p)->create(plan->spec);
    crash_point("up-created"); // tests: made, not yet recorded (undone by the claim or label)
    // A marketplace offer can be rented by someone else between the search and the rental
    // (nothing was made): search again and rent the next best, a few times at most.
    for (int again = 0; again < 3 && !m && m.error().kind == ErrorKind::conflict; ++again) {
        BERTH_TRY(check_interrupt("before creating '" + req.name + "'"));
        auto taken = plan->spec.offer_id;
        auto next = (*p)->plan(spec, req.options);
        if (!next || next->spec.offer_id == taken || next->spec.offer_id.empty()) break;
        m_progress("offer " + taken +
                   " was rented by someone else meanwhile; renting the next best");
        plan = std::move(next);
        if (on_plan) on_plan(*plan);
        spec_json["offer_id"] = plan->spec.offer_id;
        r.spec_json = spec_json.dump();
        BERTH_TRY(m_db.put(r));
        m = (*p)->create(plan->spec);
    }
    Result<InstanceRecord> ready = tl::unexpected(Error{});
    if (m) {
        r.provider_id = m->id;
        r.host_key = m->ssh.host_key;
        r.status = Status::loading;
        BERTH_TRY(m_db.put(r));
        m_progress("created " + req.provider + " instance " + m->id);
        auto stop = check_interrupt("after creating '" + r.name + "'");
        ready = stop ? wait_running(r, **p, req.timeout) : tl::unexpected(stop.error());
        if (ready) {
            BERTH_TRY(m_db.finish(*intent, true));
            return ready;
        }
    } else {
        ready = tl::unexpected(m.error());
    }
    // Whatever was made (also by a create whose answer was lost) bills: undo it, then report.
    const Error &why = ready.error();
    auto cur = m_db.get(r.name);
    if (cur && *cur) r = **cur;
    auto rb = rollback(r, **p, why.kind == ErrorKind::interrupted ? Error{"interrupted"} : why);
    // An undo that failed leaves the intent pending: the next command that touches the
    // instance (`berth ls`) tries again.
    if (rb) (void)m_db.finish(*intent, false, why.what);
    if (!rb)
        return fail(
            why.kind, why.what + "; destroying what was created failed too: " + rb.error().what,
            "`berth ls` retries the undo; or destroy it in the provider's console", why.code);
    bool made = !r.provider_id.empty();
    if (why.kind == ErrorKind::interrupted)
        return fail(
            ErrorKind::interrupted,
            "interrupted: '" + r.name + "' was not created" +
                (made ? " (instance " + r.provider_id + " was destroyed: it bills nothing)" : ""),
            "", exit_code::interrupted);
    return fail(
        why.kind,
        why.what +
            (made ? " (instance " + r.provider_id + " was destroyed: it bills nothing)" : ""),
        why.fix.empty() && made ? "try another offer" : why.fix, why.code);
}

Result<InstanceRecord> Engine::start(const std::string &name, std::chrono::seconds timeout) {
    auto r = find(name);
    if (!r) return r;
    auto refreshed = refresh(*r);
    if (refreshed.status == Status::destroyed) return find(name);
    auto lock = lock_instance(name);
    if (!lock) return tl::unexpected(lock.error());
    auto p = provider_of(refreshed);
    if (!p) return tl::unexpected(p.error());
    if (refreshed.status == Status::running) return ensure_tunnel(refreshed);
    if (!(*p)->capabilities().can_stop)
        return fail(ErrorKind::user,
                    "'" + name + "' is " + status_name(refreshed.status) + " and " +
                        refreshed.provider + " cannot start it again",
                    "`berth up` a new one (the store keeps your environment)", 2);
    auto intent = m_db.intend(name, "start");
    if (!intent) return tl::unexpected(intent.error());
    BERTH_TRY(m_db.set_status(name, Status::starting));
    m_progress("starting '" + name + "'");
    auto s = (*p)->start(refreshed.provider_id);
    if (!s) {
        // Refused: the record keeps the state it had, and says why.
        (void)m_db.finish(*intent, false, s.error().what);
        refreshed.message = "start refused: " + s.error().what;
        BERTH_TRY(m_db.put(refreshed));
        return tl::unexpected(s.error());
    }
    auto ready = wait_running(refreshed, **p, timeout);
    (void)m_db.finish(*intent, bool(ready), ready ? "" : ready.error().what);
    if (ready) {
        // An idle time changed with `berth idle` outlives the stop: apply it again.
        auto i = idle_spec(*ready);
        if (i.value("changed", false)) {
            auto set = set_idle(m_db, *ready, static_cast<long>(jsonr::num(i, "seconds")));
            if (!set) m_progress("could not apply the idle time again: " + set.error().what);
        }
    }
    if (!ready) {
        auto m = (*p)->describe(refreshed.provider_id);
        if (m) refreshed.status = status_from(m->state);
        refreshed.message = "start failed: " + ready.error().what;
        (void)m_db.put(refreshed);
    }
    return ready;
}

Result<InstanceRecord> Engine::stop(const std::string &name) {
    auto found = find(name);
    if (!found) return found;
    auto r = refresh(*found);
    if (r.status == Status::destroyed) return find(name);
    auto lock = lock_instance(name);
    if (!lock) return tl::unexpected(lock.error());
    auto p = provider_of(r);
    if (!p) return tl::unexpected(p.error());
    if (auto caps = (*p)->capabilities(); !caps.can_stop)
        return fail(
            ErrorKind::user,
            r.provider + " cannot stop '" + name + "' and resume it later: " + caps.stop_note,
            "save what you need (`berth save " + name + "`), then `berth destroy " + name + "`", 2);
    auto intent = m_db.intend(name, "stop");
    if (!intent) return tl::unexpected(intent.error());
    Status before = r.status;
    BERTH_TRY(m_db.set_status(name, Status::stopping));
    m_progress("stopping '" + name + "'");
    close_tunnel(r);
    double t = epoch_now(); // the provider stops billing when it takes the request
    auto s = (*p)->stop(r.provider_id);
    if (!s) {
        (void)m_db.finish(*intent, false, s.error().what);
        r.status = before;
        r.message = "stop refused: " + s.error().what;
        (void)m_db.put(r);
        return tl::unexpected(s.error());
    }
    auto m = (*p)->describe(r.provider_id);
    if (m && m->state == MachineState::running) {
        (void)m_db.finish(*intent, false, "still running after stop");
        r.status = Status::running;
        r.message = "still running after `berth stop`";
        (void)m_db.put(r);
        return fail(ErrorKind::conflict, "instance '" + name + "' is still running after stop",
                    "see `berth status " + name + "`");
    }
    (void)m_db.meter_close(r.provider, r.provider_id, "rent", t);
    r.status = Status::stopped;
    r.message = "stopped by berth stop";
    BERTH_TRY(m_db.put(r));
    BERTH_TRY(m_db.finish(*intent, true));
    return r;
}

Result<> Engine::destroy(const std::string &name) {
    auto found = find(name);
    if (!found) return tl::unexpected(found.error());
    auto r = resolve(*found);
    if (!r) return tl::unexpected(r.error());
    if (r->status == Status::destroyed) return {};
    auto lock = lock_instance(name);
    if (!lock) return tl::unexpected(lock.error());
    auto p = provider_of(*r);
    if (!p) return tl::unexpected(p.error());
    return destroy_locked(*r, **p);
}

Result<std::string> Engine::purge_store(const InstanceRecord &r, bool check_only) {
    auto p = provider_of(r);
    if (!p) return tl::unexpected(p.error());
    return (*p)->purge_store(r.provider_id, check_only);
}

Result<> Engine::destroy_locked(InstanceRecord r, Provider &p) {
    auto intent = m_db.intend(r.name, "destroy");
    if (!intent) return tl::unexpected(intent.error());
    BERTH_TRY(m_db.set_status(r.name, Status::destroying));
    m_progress("destroying '" + r.name + "'");
    close_tunnel(r);
    if (!r.provider_id.empty()) {
        auto d = confirm_destroyed(r, p, "destroyed");
        if (!d) {
            (void)m_db.finish(*intent, false, d.error().what);
            return d;
        }
    }
    r.status = Status::destroyed;
    r.message = "destroyed";
    BERTH_TRY(m_db.put(r));
    BERTH_TRY(m_db.finish(*intent, true));
    BERTH_TRY(ssh::unpin("berth-" + r.name));
    return refresh_ssh_config();
}

Result<std::vector<std::string>> Engine::reconcile(const std::string &provider,
                                                   const Options &opt) {
    auto p = m_registry.make(provider, opt);
    if (!p) return tl::unexpected(p.error());
    if (!(*p)->capabilities().lists_machines)
        return fail(ErrorKind::user, provider + " cannot list its machines", "", 2);
    auto machines = (*p)->list();
    if (!machines) return tl::unexpected(machines.error());
    std::vector<std::string> added;
    for (const auto &m : *machines) {
        std::string name = name_from_label(m.label);
        if (name.empty() || !validate_name(name)) continue; // not berth's
        auto existing = m_db.get(name);
        if (!existing) return tl::unexpected(existing.error());
        if (*existing && (*existing)->status != Status::destroyed) {
            if ((*existing)->provider_id == m.id || (*existing)->provider_id.empty())
                continue;       // known, or an up in flight (resolved on its own)
            name += "-" + m.id; // a namesake: keep both
            if (auto again = m_db.get(name); again && *again) continue;
            if (!validate_name(name)) continue;
        }
        InstanceRecord r;
        r.name = name;
        r.provider = provider;
        r.provider_id = m.id;
        r.status = status_from(m.state);
        r.ssh_host = m.ssh.host;
        r.ssh_port = m.ssh.port;
        r.ssh_user = m.ssh.user.empty() ? "root" : m.ssh.user;
        nlohmann::json spec = {{"max_hours", 0}, {"label", m.label}};
        // The machine's shape where the provider knows it (a Slurm job's login node and
        // directories): ssh and Jupyter work on the recovered record as on the one `up` made.
        auto hint = nlohmann::json::parse(m.spec_hint, nullptr, false);
        if (hint.is_object())
            for (const char *k : {"host", "options"})
                if (hint.contains(k) && hint[k].is_object()) spec[k] = hint[k];
        r.spec_json = spec.dump();
        r.message = "recovered from " + provider + " by `berth ls --reconcile`";
        bool late = (*p)->capabilities().key_arrives_late;
        // A list may leave the endpoint out (a job's node): the machine's own answer has it.
        MachineInfo full = m;
        if (m.ssh.port == 0 &&
            (m.state == MachineState::running || m.state == MachineState::loading))
            if (auto d = (*p)->describe(m.id); d && d->ssh.port > 0) {
                full = *d;
                r.ssh_host = full.ssh.host;
                r.ssh_port = full.ssh.port;
                if (!full.ssh.user.empty()) r.ssh_user = full.ssh.user;
                r.status = status_from(full.state);
            }
        if (late && m.state == MachineState::stopped) {
            // The key arrives as it boots: in time for the next `berth start`.
            auto pub = ssh::ensure_key();
            if (!pub || !(*p)->attach_key(m.id, *pub))
                r.message += "; berth's key could not be sent to it";
        } else if (full.state == MachineState::running && full.ssh.port > 0) {
            // berth's key and pins may be gone with the state: let this berth's key in, and
            // pin the host key the provider states, else on first use again.
            auto pub = ssh::ensure_key();
            bool attached = pub && (*p)->attach_key(m.id, *pub);
            if (attached && late)
                r.message += "; berth's key reaches it at its next boot: `berth stop " + name +
                             "` then `berth start " + name + "`";
            if (attached) {
                auto k = full.ssh.host_key.empty() ? scan_host_key(full.ssh.host, full.ssh.port)
                                                   : Result<std::string>(full.ssh.host_key);
                if (k) {
                    r.host_key = *k;
                    (void)ssh::pin_host_key("berth-" + name, *k);
                }
            }
        }
        BERTH_TRY(m_db.put(r));
        note_meters(r, m);
        added.push_back(name);
    }
    // Records the list did not mention are checked one by one: absence from a list is not
    // proof that a machine is gone.
    auto all = m_db.list();
    if (!all) return tl::unexpected(all.error());
    for (auto &r : *all)
        if (r.provider == provider && r.status != Status::destroyed) (void)refresh(r);
    BERTH_TRY(refresh_ssh_config());
    return added;
}

} // namespace berth
