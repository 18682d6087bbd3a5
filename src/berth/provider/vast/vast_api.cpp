#include "provider/vast/vast_api.hpp"
#include "provider/registry.hpp"

#include "core/cost.hpp"
#include "core/json_read.hpp"
#include "core/paths.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

#include <cstdlib>
#include <iostream>

namespace berth::vast {

Result<Credentials> load_credentials(const std::string &key_file) {
    Credentials c;
    const char *url = std::getenv("VAST_URL");
    c.base_url = url && *url ? url : "https://console.vast.ai";
    while (!c.base_url.empty() && c.base_url.back() == '/')
        c.base_url.pop_back();
    if (!key_file.empty()) {
        // A file (or stdin): a key on a command line would be visible to every user in `ps`.
        std::string text;
        if (key_file == "-") {
            std::getline(std::cin, text);
        } else {
            auto f = fs::read_file(key_file);
            if (!f)
                return fail(ErrorKind::user, "cannot read the API key file " + key_file,
                            f.error().what, 2);
            text = *f;
        }
        c.api_key = str::trim(text);
        if (c.api_key.empty())
            return fail(ErrorKind::user, "the API key file " + key_file + " is empty", "", 2);
    } else if (const char *k = std::getenv("VAST_API_KEY"); k && *k)
        c.api_key = k;
    else if (auto f = fs::read_file(paths::config_home() / "vastai" / "vast_api_key"))
        c.api_key = str::trim(*f);
    if (c.api_key.empty())
        return fail("no Vast.ai API key",
                    "set VAST_API_KEY, or run `vastai set api-key KEY`, or pass --api-key-file");
    if (c.api_key.find_first_of(" \t\r\n") != std::string::npos || c.api_key.size() > 512)
        return fail(ErrorKind::user, "the Vast.ai API key has spaces or line breaks in it",
                    "check the key file", 2);
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
        // msg, else detail: a string, or FastAPI's list of {"msg": ...}; anything else is
        // not words for a person.
        msg = jsonr::text(j, "msg", "", 300);
        if (msg.empty()) msg = jsonr::text(j, "detail", "", 300);
        if (msg.empty() && j.contains("detail") && j["detail"].is_array() && !j["detail"].empty())
            msg = jsonr::text(j["detail"][0], "msg", "", 300);
        code = jsonr::text(j, "error", "", 60);
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

Offer to_offer(nlohmann::json o) {
    using namespace jsonr;
    Offer f;
    f.provider = "vast";
    f.id = id(o, "id");
    f.gpu_name = text(o, "gpu_name", "", 128);
    f.gpu_count = static_cast<int>(integer(o, "num_gpus"));
    f.vram_gb = num(o, "gpu_ram") / 1000.0; // MB on the wire, GB as the CLI shows it
    f.interruptible = boolean(o, "is_bid");
    f.min_bid = num(o, "min_bid");
    f.price_per_hour = f.interruptible ? f.min_bid : num(o, "dph_base");
    f.total_per_hour = num(o, "dph_total");
    f.storage_per_gb_month = num(o, "storage_cost");
    f.transfer_down_per_gb = num(o, "inet_down_cost");
    f.transfer_up_per_gb = num(o, "inet_up_cost");
    f.dlperf = num(o, "dlperf");
    f.dlperf_per_dollar = num(o, "dlperf_per_dphtotal");
    f.reliability = num(o, "reliability");
    f.score = num(o, "score");
    f.inet_down_mbps = num(o, "inet_down");
    f.inet_up_mbps = num(o, "inet_up");
    f.location = text(o, "geolocation", "", 128);
    f.raw = std::move(o);
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
        return fail(r.status == 404   ? ErrorKind::not_found
                    : r.status == 409 ? ErrorKind::conflict
                    : r.status >= 500 ? ErrorKind::network
                                      : ErrorKind::refused,
                    "Vast.ai refused " + what + ": " + describe_error(r),
                    r.status == 401 || r.status == 403 ? "check the API key" : "");
    if (r.content_type != "application/json")
        return fail("Vast.ai answered " + what + " with Content-Type '" + r.content_type + "'",
                    "retry later");
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object())
        return fail(ErrorKind::malformed,
                    "Vast.ai answered " + what + " with something that is not a JSON object",
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

// A host name reaches ssh's command line: letters, digits, dots, dashes and colons only, and
// never a leading dash; anything else is no host.
static std::string safe_host(const std::string &h) {
    if (h.empty() || h[0] == '-' ||
        h.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") !=
            std::string::npos)
        return {};
    return h;
}

SshEndpoint ssh_endpoint(const nlohmann::json &row) {
    SshEndpoint e;
    e.user = "root";
    auto num = [](const nlohmann::json &v) -> int {
        nlohmann::json box{{"v", v}};
        auto n = jsonr::integer(box, "v");
        return n > 0 && n <= 65535 ? static_cast<int>(n) : 0;
    };
    if (row.contains("ports") && row["ports"].is_object() && row["ports"].contains("22/tcp")) {
        const auto &m = row["ports"]["22/tcp"];
        if (m.is_array() && !m.empty() && m[0].is_object() && m[0].contains("HostPort")) {
            e.host = safe_host(jsonr::text(row, "public_ipaddr", "", 255));
            e.port = num(m[0]["HostPort"]);
            if (!e.host.empty() && e.port > 0) return e;
        }
    }
    e.host = jsonr::text(row, "ssh_host", "", 255);
    e.port = row.contains("ssh_port") ? num(row["ssh_port"]) : 0;
    std::string runtype = jsonr::text(row, "image_runtype", "", 255);
    if (e.port > 0 && e.port < 65535 && str::contains(runtype, "jupyter")) e.port += 1;
    // A host name reaches ssh's command line: letters, digits, dots, dashes, colons only.
    e.host = safe_host(e.host);
    return e;
}

MachineInfo parse_instance(const nlohmann::json &row, double now) {
    MachineInfo m;
    auto str_of = [&](const char *k) { return jsonr::text(row, k, "", 1024); };
    auto num_of = [&](const char *k) { return jsonr::num(row, k); };
    m.id = jsonr::id(row, "id");
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
    // A machine that stopped itself left its reason in its label ("berth:NAME | idle 1m: ...").
    if ((m.state == MachineState::stopped || m.state == MachineState::exited) &&
        !label_note(m.label).empty())
        m.message = "stopped itself: " + label_note(m.label);
    if (m.state == MachineState::running) m.ssh = ssh_endpoint(row);
    m.ssh.user = "root";
    m.rent_per_hour = num_of("dph_base");
    // The one cost model: storage $/GB-month over the allocated GB, per hour.
    m.storage_per_hour =
        cost::estimate({0, num_of("storage_cost"), 0, 0}, {0, 1, num_of("disk_space"), 0, 0})
            .storage;
    m.created_at = num_of("start_date");
    if (m.state == MachineState::running) m.running_since = now - num_of("uptime_mins") * 60.0;
    m.interruptible = jsonr::boolean(row, "is_bid");
    // Transfer so far: the byte counts the API bills (GB), at the offer's $/GB each way.
    m.transfer_cost =
        cost::estimate({0, 0, num_of("inet_down_cost"), num_of("inet_up_cost")},
                       {0, 0, 0, num_of("inet_down_billed"), num_of("inet_up_billed")})
            .transfer;
    return m;
}

} // namespace berth::vast
