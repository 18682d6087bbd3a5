#include "engine/lifecycle.hpp"

#include "core/exit_codes.hpp"
#include "engine/bootstrap.hpp"
#include "engine/ledger.hpp"
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
    return {"berth-" + r.name, r.ssh_host, r.ssh_port, r.ssh_user};
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
    auto p = make_provider(r.provider);
    if (!p) return r;
    auto m = (*p)->describe(r.provider_id);
    if (!m) {
        r.message = m.error().what;
        return r;
    }
    note_meters(r, *m);
    Status s = status_from(m->state);
    // Mid-transition states are the engine's own; the provider's word wins once it settles.
    if (s != r.status && !(r.status == Status::creating || r.status == Status::destroying)) {
        r.status = s;
        if (!m->message.empty()) r.message = m->message;
        if (s == Status::stopped) close_tunnel(r);
        (void)m_db.put(r);
    }
    return r;
}

// The ledger follows what the provider says: storage from the moment the machine exists,
// rent from the moment it runs (the provider's clock), each closed when that stops.
void Engine::note_meters(const InstanceRecord &r, const MachineInfo &m) {
    double now = epoch_now();
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
    for (int i = 0; i < 20; ++i) {
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
    return fail("no SSH host key from " + host + ":" + std::to_string(port) +
                (last.empty() ? "" : ": " + last));
}

void Engine::close_tunnel(InstanceRecord &r) {
    if (r.tunnel_pid && ssh::is_ssh_process(r.tunnel_pid)) ::kill(r.tunnel_pid, SIGTERM);
    r.tunnel_pid = 0;
    r.tunnel_port = 0;
}

Result<InstanceRecord> Engine::ensure_tunnel(InstanceRecord r) {
    if (r.tunnel_pid && ssh::is_ssh_process(r.tunnel_pid) &&
        net::connectable("127.0.0.1", r.tunnel_port, std::chrono::milliseconds(300)))
        return r;
    close_tunnel(r);
    for (int attempt = 0;; ++attempt) {
        if (r.jupyter_port == 0 && r.provider != "local" && r.status == Status::running) {
            // No Jupyter known (a record rebuilt by reconcile, a machine that restarted): the
            // agent prepares the machine (idempotent: a Jupyter that answers is reused).
            auto p = make_provider(r.provider);
            if (!p) return tl::unexpected(p.error());
            auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
            BootstrapPlan plan{(*p)->workdir(),
                               spec.is_object() ? spec.value("max_hours", 0.0) : 0.0,
                               (*p)->api_url()};
            auto b = bootstrap_over_ssh(target_of(r), plan, m_progress);
            if (!b) return tl::unexpected(b.error());
            r.jupyter_port = b->jupyter_port;
            r.jupyter_token = b->jupyter_token;
        }
        auto port = net::free_loopback_port();
        if (!port) return tl::unexpected(port.error());
        auto pid = ssh::start_tunnel(target_of(r), *port, r.jupyter_port);
        if (!pid) return tl::unexpected(pid.error());
        if (r.provider != "local" && attempt == 0) {
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
}

Result<InstanceRecord> Engine::wait_running(InstanceRecord r, Provider &p,
                                            std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string last;
    for (;;) {
        auto m = p.describe(r.provider_id);
        if (!m) return tl::unexpected(m.error());
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
            m->state == MachineState::gone) {
            BERTH_TRY(m_db.set_status(r.name, Status::failed, m->message));
            return fail("instance '" + r.name + "' did not start: " +
                            (m->message.empty() ? machine_state_name(m->state) : m->message),
                        "see `berth status " + r.name + "`");
        }
        if (std::chrono::steady_clock::now() > deadline)
            return fail("instance '" + r.name + "' was not ready after " +
                            std::to_string(timeout.count()) + " s",
                        "see `berth status " + r.name + "`");
        std::this_thread::sleep_for(std::chrono::milliseconds(p.name() == "local" ? 150 : 1000));
    }
    auto target = target_of(r);
    if (r.host_key.empty()) {
        auto k = scan_host_key(r.ssh_host, r.ssh_port);
        if (!k) return tl::unexpected(k.error());
        r.host_key = *k;
        m_progress("pinned the machine's host key " + str::split(*k, ' ').back().substr(0, 16) +
                   "... (first use)");
    }
    BERTH_TRY(ssh::pin_host_key(target.alias, r.host_key));
    BERTH_TRY(m_db.put(r));
    BERTH_TRY(refresh_ssh_config());
    m_progress("checking SSH as " + r.ssh_user + "@" + r.ssh_host + ":" +
               std::to_string(r.ssh_port));
    BERTH_TRY(ssh::wait_ready(target, std::chrono::seconds(60)));
    if (r.jupyter_port == 0) {
        // The machine came up bare (a rented container): berth's agent prepares it.
        auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
        BootstrapPlan plan{p.workdir(), spec.is_object() ? spec.value("max_hours", 0.0) : 0.0,
                           p.api_url()};
        auto b = bootstrap_over_ssh(target, plan, m_progress);
        if (!b) return tl::unexpected(b.error());
        r.jupyter_port = b->jupyter_port;
        r.jupyter_token = b->jupyter_token;
        BERTH_TRY(m_db.put(r));
    }
    m_progress("opening the Jupyter tunnel");
    auto t = ensure_tunnel(r);
    if (!t) return t;
    r = *t;
    r.status = Status::running;
    r.message = "ready";
    BERTH_TRY(m_db.put(r));
    return r;
}

Result<InstanceRecord> Engine::up(const UpRequest &req) {
    BERTH_TRY(validate_name(req.name));
    auto existing = m_db.get(req.name);
    if (!existing) return tl::unexpected(existing.error());
    if (*existing && (*existing)->status != Status::destroyed)
        return fail("instance '" + req.name + "' already exists (" +
                        status_name((*existing)->status) + ")",
                    "`berth start " + req.name + "`, or pick another name");
    auto p = make_provider(req.provider, {req.api_key});
    if (!p) return tl::unexpected(p.error());
    auto pub = ssh::ensure_key();
    if (!pub) return tl::unexpected(pub.error());

    InstanceRecord r;
    r.name = req.name;
    r.provider = req.provider;
    r.provider_id = req.name;
    r.status = Status::creating;
    nlohmann::json spec_json{{"max_hours", req.max_hours}};
    if (req.provider != "local") {
        spec_json["offer_id"] = req.offer_id;
        spec_json["image"] = req.image;
        spec_json["disk_gb"] = req.disk_gb;
        spec_json["bid"] = req.bid ? nlohmann::json(*req.bid) : nlohmann::json();
        spec_json["label"] = "berth:" + req.name;
    }
    r.spec_json = spec_json.dump();
    BERTH_TRY(m_db.put(r)); // intent before action
    auto intent = m_db.intend(r.name, "create", req.provider);
    if (!intent) return tl::unexpected(intent.error());
    m_progress("creating '" + r.name + "' on " + req.provider);
    InstanceSpec spec{req.name, req.max_hours, req.offer_id, *pub + "\n"};
    spec.image = req.image;
    spec.disk_gb = req.disk_gb;
    spec.bid = req.bid;
    spec.label = "berth:" + req.name;
    auto m = (*p)->create(spec);
    if (!m) {
        (void)m_db.finish(*intent, false, m.error().what);
        (void)m_db.remove(r.name); // the provider refused: nothing exists to track
        return tl::unexpected(m.error());
    }
    r.provider_id = m->id;
    r.host_key = m->ssh.host_key;
    r.status = Status::loading;
    BERTH_TRY(m_db.put(r));
    BERTH_TRY(m_db.finish(*intent, true));
    m_progress("created " + req.provider + " instance " + m->id);
    auto ready = wait_running(r, **p, req.timeout);
    if (ready || req.provider == "local") return ready;
    // A rented machine that will not come up still bills: destroy it before reporting.
    auto cur = m_db.get(r.name);
    if (cur && *cur) r = **cur;
    auto d = destroy_failed(r, **p);
    if (!d)
        return fail(ready.error().what + "; destroying it failed too: " + d.error().what,
                    "`berth destroy " + r.name + "`, or destroy instance " + r.provider_id +
                        " in the provider's console");
    return fail(ready.error().what + " (instance " + r.provider_id +
                    " was destroyed: it bills nothing)",
                ready.error().fix.empty() ? "try another offer" : ready.error().fix);
}

Result<> Engine::destroy_failed(InstanceRecord &r, Provider &p) {
    close_tunnel(r);
    m_progress("destroying instance " + r.provider_id + " (it did not come up)");
    double t = epoch_now();
    BERTH_TRY(p.destroy(r.provider_id));
    auto m = p.describe(r.provider_id);
    if (!m) return tl::unexpected(m.error());
    if (m->state != MachineState::gone)
        return fail("instance " + r.provider_id + " is still there");
    (void)m_db.meter_close(r.provider, r.provider_id, "", t);
    r.status = Status::destroyed;
    r.message = "destroyed: it did not come up";
    BERTH_TRY(m_db.put(r));
    (void)ssh::unpin("berth-" + r.name);
    return refresh_ssh_config();
}

Result<InstanceRecord> Engine::start(const std::string &name, std::chrono::seconds timeout) {
    auto r = find(name);
    if (!r) return r;
    auto p = make_provider(r->provider);
    if (!p) return tl::unexpected(p.error());
    auto refreshed = refresh(*r);
    if (refreshed.status == Status::running) return ensure_tunnel(refreshed);
    auto intent = m_db.intend(name, "start");
    if (!intent) return tl::unexpected(intent.error());
    BERTH_TRY(m_db.set_status(name, Status::starting));
    m_progress("starting '" + name + "'");
    auto s = (*p)->start(r->provider_id);
    (void)m_db.finish(*intent, bool(s), s ? "" : s.error().what);
    if (!s) return tl::unexpected(s.error());
    return wait_running(refreshed, **p, timeout);
}

Result<InstanceRecord> Engine::stop(const std::string &name) {
    auto r = find(name);
    if (!r) return r;
    auto p = make_provider(r->provider);
    if (!p) return tl::unexpected(p.error());
    auto intent = m_db.intend(name, "stop");
    if (!intent) return tl::unexpected(intent.error());
    BERTH_TRY(m_db.set_status(name, Status::stopping));
    m_progress("stopping '" + name + "'");
    close_tunnel(*r);
    double t = epoch_now(); // the provider stops billing when it takes the request
    auto s = (*p)->stop(r->provider_id);
    if (!s) {
        (void)m_db.finish(*intent, false, s.error().what);
        return tl::unexpected(s.error());
    }
    auto m = (*p)->describe(r->provider_id);
    if (m && m->state == MachineState::running)
        return fail("instance '" + name + "' is still running after stop",
                    "see `berth status " + name + "`");
    (void)m_db.meter_close(r->provider, r->provider_id, "rent", t);
    r->status = Status::stopped;
    r->message = "stopped by berth stop";
    BERTH_TRY(m_db.put(*r));
    BERTH_TRY(m_db.finish(*intent, true));
    return *r;
}

Result<> Engine::destroy(const std::string &name) {
    auto r = find(name);
    if (!r) return tl::unexpected(r.error());
    auto p = make_provider(r->provider);
    if (!p) return tl::unexpected(p.error());
    auto intent = m_db.intend(name, "destroy");
    if (!intent) return tl::unexpected(intent.error());
    BERTH_TRY(m_db.set_status(name, Status::destroying));
    m_progress("destroying '" + name + "'");
    close_tunnel(*r);
    // The last byte counts before the machine and its counters are gone.
    if (auto last = (*p)->describe(r->provider_id)) note_meters(*r, *last);
    double t = epoch_now();
    auto d = (*p)->destroy(r->provider_id);
    if (!d) {
        (void)m_db.finish(*intent, false, d.error().what);
        return d;
    }
    // Recorded destroyed only once the provider shows it gone.
    auto m = (*p)->describe(r->provider_id);
    if (!m || m->state != MachineState::gone) {
        (void)m_db.finish(*intent, false, "still present after destroy");
        return fail("instance '" + name + "' is not confirmed gone after destroy" +
                        (m ? "" : " (" + m.error().what + ")"),
                    "retry `berth destroy " + name + "`");
    }
    (void)m_db.meter_close(r->provider, r->provider_id, "", t);
    r->status = Status::destroyed;
    r->message = "destroyed";
    BERTH_TRY(m_db.put(*r));
    BERTH_TRY(m_db.finish(*intent, true));
    BERTH_TRY(ssh::unpin("berth-" + name));
    return refresh_ssh_config();
}

Result<std::vector<std::string>> Engine::reconcile(const std::string &provider,
                                                   const ProviderOptions &opt) {
    auto p = make_provider(provider, opt);
    if (!p) return tl::unexpected(p.error());
    auto machines = (*p)->list();
    if (!machines) return tl::unexpected(machines.error());
    std::vector<std::string> added;
    for (const auto &m : *machines) {
        if (m.label.rfind("berth:", 0) != 0) continue; // not berth's
        std::string name = m.label.substr(6);
        if (!validate_name(name)) continue;
        auto existing = m_db.get(name);
        if (!existing) return tl::unexpected(existing.error());
        if (*existing && (*existing)->status != Status::destroyed) {
            if ((*existing)->provider_id == m.id) continue; // known
            name += "-" + m.id;                             // a namesake: keep both
            if (auto again = m_db.get(name); again && *again) continue;
        }
        InstanceRecord r;
        r.name = name;
        r.provider = provider;
        r.provider_id = m.id;
        r.status = status_from(m.state);
        r.ssh_host = m.ssh.host;
        r.ssh_port = m.ssh.port;
        r.ssh_user = m.ssh.user.empty() ? "root" : m.ssh.user;
        r.spec_json = nlohmann::json{{"max_hours", 0}, {"label", m.label}}.dump();
        r.message = "recovered from " + provider + " by `berth ls --reconcile`";
        if (m.state == MachineState::running && m.ssh.port > 0) {
            // berth's key and pins may be gone with the state: let this berth's key in, and
            // pin the host key on first use again.
            auto pub = ssh::ensure_key();
            if (pub && (*p)->attach_key(m.id, *pub)) {
                auto k = scan_host_key(m.ssh.host, m.ssh.port);
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
