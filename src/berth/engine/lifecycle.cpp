#include "engine/lifecycle.hpp"

#include "core/exit_codes.hpp"
#include "util/net.hpp"
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
    auto port = net::free_loopback_port();
    if (!port) return tl::unexpected(port.error());
    auto pid = ssh::start_tunnel(target_of(r), *port, r.jupyter_port);
    if (!pid) return tl::unexpected(pid.error());
    r.tunnel_port = *port;
    r.tunnel_pid = *pid;
    BERTH_TRY(m_db.put(r));
    return r;
}

Result<InstanceRecord> Engine::wait_running(InstanceRecord r, Provider &p,
                                            std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string last;
    for (;;) {
        auto m = p.describe(r.provider_id);
        if (!m) return tl::unexpected(m.error());
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
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
    auto target = target_of(r);
    BERTH_TRY(ssh::pin_host_key(target.alias, r.host_key));
    BERTH_TRY(m_db.put(r));
    BERTH_TRY(refresh_ssh_config());
    m_progress("checking SSH as " + r.ssh_user + "@" + r.ssh_host + ":" +
               std::to_string(r.ssh_port));
    BERTH_TRY(ssh::wait_ready(target, std::chrono::seconds(30)));
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
    auto p = make_provider(req.provider);
    if (!p) return tl::unexpected(p.error());
    auto pub = ssh::ensure_key();
    if (!pub) return tl::unexpected(pub.error());

    InstanceRecord r;
    r.name = req.name;
    r.provider = req.provider;
    r.provider_id = req.name;
    r.status = Status::creating;
    r.spec_json = nlohmann::json{{"max_hours", req.max_hours}}.dump();
    BERTH_TRY(m_db.put(r)); // intent before action
    auto intent = m_db.intend(r.name, "create", req.provider);
    if (!intent) return tl::unexpected(intent.error());
    m_progress("creating '" + r.name + "' on " + req.provider);
    InstanceSpec spec{req.name, req.max_hours, "", *pub + "\n"};
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
    return wait_running(r, **p, req.timeout);
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
    auto s = (*p)->stop(r->provider_id);
    if (!s) {
        (void)m_db.finish(*intent, false, s.error().what);
        return tl::unexpected(s.error());
    }
    auto m = (*p)->describe(r->provider_id);
    if (m && m->state == MachineState::running)
        return fail("instance '" + name + "' is still running after stop",
                    "see `berth status " + name + "`");
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
    auto d = (*p)->destroy(r->provider_id);
    if (!d) {
        (void)m_db.finish(*intent, false, d.error().what);
        return d;
    }
    // Recorded destroyed only once the provider shows it gone.
    auto m = (*p)->describe(r->provider_id);
    if (!m || m->state != MachineState::gone) {
        (void)m_db.finish(*intent, false, "still present after destroy");
        return fail("instance '" + name + "' is still there after destroy",
                    "retry `berth destroy " + name + "`");
    }
    r->status = Status::destroyed;
    r->message = "destroyed";
    BERTH_TRY(m_db.put(*r));
    BERTH_TRY(m_db.finish(*intent, true));
    BERTH_TRY(ssh::unpin("berth-" + name));
    return refresh_ssh_config();
}

} // namespace berth
