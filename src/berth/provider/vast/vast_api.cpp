#include "provider/vast/vast_api.hpp"

#include "core/cost.hpp"
#include "core/paths.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

#include <cstdlib>

namespace berth::vast {

Result<Credentials> load_credentials(const std::string &flag_key) {
    Credentials c;
    const char *url = std::getenv("VAST_URL");
    c.base_url = url && *url ? url : "https://console.vast.ai";
    while (!c.base_url.empty() && c.base_url.back() == '/')
        c.base_url.pop_back();
    if (!flag_key.empty())
        c.api_key = flag_key;
    else if (const char *k = std::getenv("VAST_API_KEY"); k && *k)
        c.api_key = k;
    else if (auto f = fs::read_file(paths::config_home() / "vastai" / "vast_api_key"))
        c.api_key = str::trim(*f);
    if (c.api_key.empty())
        return fail("no Vast.ai API key",
                    "set VAST_API_KEY, or run `vastai set api-key KEY`, or pass --api-key");
    return c;
}

http::Request search_request(const Credentials &c, const nlohmann::json &query) {
    http::Request r;
    r.method = "POST";
    r.url = c.base_url + "/api/v0/bundles/";
    r.headers = {"Authorization: Bearer " + c.api_key, "Content-Type: application/json",
                 "Accept: application/json"};
    r.body = query.dump();
    return r;
}

std::string describe_error(const http::Response &r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    std::string msg, code;
    if (j.is_object()) {
        msg = j.value("msg", j.value("detail", std::string()));
        code = j.value("error", std::string());
    }
    if (msg.empty()) msg = r.status == 401 ? "please log in or sign up" : "unexpected answer";
    return msg + " (" + (code.empty() ? "" : code + ", ") + "HTTP " + std::to_string(r.status) +
           ")";
}

Result<> check_search_answer(const http::Response &r) {
    if (r.status != 200) return fail("Vast.ai search failed: " + describe_error(r));
    if (r.content_type != "application/json")
        return fail("Vast.ai answered the search with Content-Type '" + r.content_type + "'",
                    "retry later");
    return {};
}

Error not_an_offer_list() {
    return Error{"Vast.ai answered the search with something that is not an offer list",
                 "retry later"};
}

Offer to_offer(const nlohmann::json &o) {
    Offer f;
    f.provider = "vast";
    f.id = std::to_string(o.value("id", 0LL));
    f.gpu_name = o.value("gpu_name", std::string());
    f.gpu_count = o.value("num_gpus", 0);
    f.vram_gb = o.value("gpu_ram", 0.0) / 1000.0; // MB on the wire, GB as the CLI shows it
    f.price_per_hour = o.value("dph_base", 0.0);
    f.location = o.value("geolocation", std::string());
    return f;
}

http::Request api_request(const Credentials &c, const std::string &method, const std::string &path,
                          const nlohmann::json &body) {
    http::Request r;
    r.method = method;
    r.url = c.base_url + path;
    r.headers = {"Authorization: Bearer " + c.api_key, "Accept: application/json"};
    if (!body.is_null()) {
        r.headers.push_back("Content-Type: application/json");
        r.body = body.dump();
    }
    if (const char *t = std::getenv("BERTH_HTTP_TIMEOUT"); t && std::atof(t) > 0)
        r.timeout = std::chrono::milliseconds(static_cast<long>(std::atof(t) * 1000));
    return r;
}

Result<nlohmann::json> parse_object(const http::Response &r, const std::string &what) {
    if (r.status < 200 || r.status > 299)
        return fail("Vast.ai refused " + what + ": " + describe_error(r),
                    r.status == 401 || r.status == 403 ? "check the API key" : "");
    if (r.content_type != "application/json")
        return fail("Vast.ai answered " + what + " with Content-Type '" + r.content_type + "'",
                    "retry later");
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object())
        return fail("Vast.ai answered " + what + " with something that is not a JSON object",
                    "retry later");
    return j;
}

std::string berth_onstart() {
    // In $HOME/.berth, not /workspace: a key must not end up in snapshots of the work.
    return "mkdir -p /root/.berth && umask 077 && env | grep -E "
           "'^(CONTAINER_ID|CONTAINER_API_KEY|VAST_CONTAINERLABEL|PUBLIC_IPADDR)=' > "
           "/root/.berth/vast.env";
}

nlohmann::json create_body(const InstanceSpec &spec) {
    nlohmann::json env = nlohmann::json::object();
    for (const auto &[k, v] : spec.env)
        env[k] = v;
    return {{"client_id", "me"},
            {"image", spec.image.empty() ? "fastdotai/fastai-course" : spec.image},
            {"env", env},
            // The bid: present means interruptible. Absent or null silently means on-demand
            // (SPEC §3), so berth always sends it explicitly and checks the result.
            {"price", spec.bid ? nlohmann::json(*spec.bid) : nlohmann::json()},
            {"disk", spec.disk_gb > 0 ? spec.disk_gb : 10.0},
            {"label", spec.label.empty() ? nlohmann::json() : nlohmann::json(spec.label)},
            {"extra", nullptr},
            {"onstart", spec.onstart.empty() ? berth_onstart() : spec.onstart},
            {"image_login", nullptr},
            {"python_utf8", false},
            {"lang_utf8", false},
            {"use_jupyter_lab", false},
            {"jupyter_dir", nullptr},
            {"force", false},
            // An error now beats a stopped instance that bills storage while waiting for a GPU.
            {"cancel_unavail", true},
            {"template_hash_id", nullptr},
            {"runtype", "ssh_direc ssh_proxy"}};
}

SshEndpoint ssh_endpoint(const nlohmann::json &row) {
    SshEndpoint e;
    e.user = "root";
    auto num = [](const nlohmann::json &v) -> int {
        if (v.is_number()) return v.get<int>();
        if (v.is_string()) return std::atoi(v.get<std::string>().c_str());
        return 0;
    };
    if (row.contains("ports") && row["ports"].is_object() && row["ports"].contains("22/tcp")) {
        const auto &m = row["ports"]["22/tcp"];
        if (m.is_array() && !m.empty() && m[0].is_object() && m[0].contains("HostPort")) {
            e.host = row.value("public_ipaddr", std::string());
            e.port = num(m[0]["HostPort"]);
            if (!e.host.empty() && e.port > 0) return e;
        }
    }
    e.host = row.contains("ssh_host") && row["ssh_host"].is_string() ? row["ssh_host"] : "";
    e.port = row.contains("ssh_port") ? num(row["ssh_port"]) : 0;
    std::string runtype = row.contains("image_runtype") && row["image_runtype"].is_string()
                              ? row["image_runtype"].get<std::string>()
                              : "";
    if (e.port > 0 && str::contains(runtype, "jupyter")) e.port += 1;
    return e;
}

MachineInfo parse_instance(const nlohmann::json &row, double now) {
    MachineInfo m;
    auto str_of = [&](const char *k) {
        return row.contains(k) && row[k].is_string() ? row[k].get<std::string>() : std::string();
    };
    auto num_of = [&](const char *k) {
        return row.contains(k) && row[k].is_number() ? row[k].get<double>() : 0.0;
    };
    m.id = std::to_string(row.value("id", 0LL));
    std::string actual = str_of("actual_status"), intended = str_of("intended_status");
    std::string msg = str::trim(str_of("status_msg"));
    m.label = str_of("label");
    m.message = msg;
    if (actual == "running" && intended != "stopped")
        m.state = MachineState::running;
    else if (actual == "exited" || actual == "unknown" || actual == "offline")
        m.state = MachineState::exited;
    else if (actual == "stopped" || actual == "frozen" ||
             (intended == "stopped" && actual != "loading"))
        m.state = MachineState::stopped;
    else if (actual.empty() || actual == "created" || actual == "loading" ||
             actual == "scheduling" || actual == "rebooting")
        m.state = actual.empty() ? MachineState::provisioning : MachineState::loading;
    else
        m.state = MachineState::loading;
    if (m.state != MachineState::running && str::contains(msg, "Error"))
        m.state = MachineState::exited;
    if (m.state == MachineState::exited)
        m.message = "actual_status " + (actual.empty() ? std::string("null") : actual) +
                    (msg.empty() ? "" : ": " + msg);
    if (m.state == MachineState::running) m.ssh = ssh_endpoint(row);
    m.ssh.user = "root";
    m.rent_per_hour = num_of("dph_base");
    // The one cost model: storage $/GB-month over the allocated GB, per hour.
    m.storage_per_hour =
        cost::estimate({0, num_of("storage_cost"), 0, 0}, {0, 1, num_of("disk_space"), 0, 0})
            .storage;
    m.created_at = num_of("start_date");
    if (m.state == MachineState::running) m.running_since = now - num_of("uptime_mins") * 60.0;
    m.interruptible = row.value("is_bid", false);
    // Transfer so far: the byte counts the API bills (GB), at the offer's $/GB each way.
    m.transfer_cost =
        cost::estimate({0, 0, num_of("inet_down_cost"), num_of("inet_up_cost")},
                       {0, 0, 0, num_of("inet_down_billed"), num_of("inet_up_billed")})
            .transfer;
    return m;
}

} // namespace berth::vast
