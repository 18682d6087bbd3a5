#include "provider/paperspace/paperspace_api.hpp"

#include "core/json_read.hpp"
#include "core/paths.hpp"
#include "provider/registry.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

#include <cctype>
#include <ctime>
#include <iostream>
#include <toml++/toml.h>

namespace berth::paperspace {

namespace {

std::string lower(std::string s) {
    for (auto &c : s)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// pspace's files: credentials.toml ([keys] team = "key") and config.toml (team = "...").
std::string key_from_pspace(const std::filesystem::path &dir) {
    auto creds = fs::read_file(dir / "credentials.toml");
    if (!creds) return {};
    try {
        auto t = toml::parse(*creds);
        auto *keys = t["keys"].as_table();
        if (!keys || keys->empty()) return {};
        std::string team;
        if (auto cfg = fs::read_file(dir / "config.toml")) {
            auto c = toml::parse(*cfg);
            team = c["team"].value_or(std::string());
        }
        if (!team.empty())
            if (auto v = (*keys)[team].value<std::string>()) return *v;
        if (keys->size() == 1)
            if (auto v = keys->begin()->second.value<std::string>()) return *v;
    } catch (const toml::parse_error &) {
        return {};
    }
    return {};
}

} // namespace

Result<Credentials> load_credentials(const std::string &key_file) {
    Credentials c;
    const char *url = std::getenv("PAPERSPACE_API_URL");
    c.base_url = url && *url ? url : "https://api.paperspace.com/v1";
    while (!c.base_url.empty() && c.base_url.back() == '/')
        c.base_url.pop_back();
    auto dir = paths::home() / ".paperspace";
    if (!key_file.empty()) {
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
        c.source = key_file;
    } else if (const char *k = std::getenv("PAPERSPACE_API_KEY"); k && *k) {
        c.api_key = k;
        c.source = "PAPERSPACE_API_KEY";
    } else if (auto k2 = key_from_pspace(dir); !k2.empty()) {
        c.api_key = k2;
        c.source = (dir / "credentials.toml").string();
    } else if (auto f = fs::read_file(dir / "config.json")) {
        auto j = nlohmann::json::parse(*f, nullptr, false);
        if (j.is_object() && j.contains("apiKey") && j["apiKey"].is_string())
            c.api_key = j["apiKey"].get<std::string>();
        c.source = (dir / "config.json").string();
    }
    if (c.api_key.empty())
        return fail("no Paperspace API key",
                    "set PAPERSPACE_API_KEY, or run `pspace login`, or pass --api-key-file "
                    "(keys: https://console.paperspace.com/settings/api-keys)");
    if (c.api_key.find_first_of(" \t\r\n\"") != std::string::npos || c.api_key.size() > 512)
        return fail(ErrorKind::user,
                    "the Paperspace API key from " + c.source + " has spaces or line breaks in it",
                    "check it", 2);
    return c;
}

http::Request request(const Credentials &c, const std::string &method, const std::string &path,
                      const nlohmann::json &body) {
    http::Request r;
    r.method = method;
    r.url = c.base_url + path;
    r.headers = {"Authorization: Bearer " + c.api_key, "Accept: application/json",
                 "x-client: berth"};
    if (method != "GET") {
        r.headers.push_back("Content-Type: application/json");
        r.body = body.is_null() ? "{}" : body.dump();
    }
    if (const char *t = std::getenv("BERTH_HTTP_TIMEOUT"); t && std::atof(t) > 0)
        r.timeout = std::chrono::milliseconds(static_cast<long>(std::atof(t) * 1000));
    return r;
}

Result<nlohmann::json> parse(const http::Response &r, const std::string &what) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    bool error_body = j.is_object() && j.contains("code") && j.contains("message") && j.size() <= 3;
    if (r.status < 200 || r.status > 299 || error_body) {
        std::string words = error_body ? jsonr::text(j, "message", "", 200) + " (" +
                                             jsonr::text(j, "code", "", 40) + ", HTTP " +
                                             std::to_string(r.status) + ")"
                                       : "HTTP " + std::to_string(r.status);
        ErrorKind kind = r.status == 404                      ? ErrorKind::not_found
                         : r.status == 409                    ? ErrorKind::conflict
                         : r.status == 429 || r.status >= 500 ? ErrorKind::network
                                                              : ErrorKind::refused;
        return fail(kind, "Paperspace refused " + what + ": " + words,
                    r.status == 401 || r.status == 403 ? "check the API key" : "");
    }
    if (j.is_discarded())
        return fail(ErrorKind::malformed,
                    "Paperspace answered " + what +
                        " with something "
                        "that is not JSON",
                    "retry later");
    return j;
}

const MachineType *find_type(const std::string &label) {
    for (const auto &t : machine_types())
        if (lower(t.label) == lower(label)) return &t;
    return nullptr;
}

double disk_per_hour(double gb) {
    for (const auto &t : disk_tiers())
        if (gb <= t.size_gb) return t.per_hour;
    return disk_tiers().back().per_hour;
}

std::string region_code(const std::string &s) {
    std::string l = lower(s);
    for (const char *code : {"ny2", "ca1", "ams1"})
        if (l == code || l.find(std::string("(") + code + ")") != std::string::npos) {
            std::string up = code;
            for (auto &c : up)
                c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
            return up;
        }
    return {};
}

static double epoch_of(const std::string &iso) {
    int y, mo, d, h, mi;
    double sec;
    if (std::sscanf(iso.c_str(), "%4d-%2d-%2dT%2d:%2d:%lf", &y, &mo, &d, &h, &mi, &sec) != 6)
        return 0;
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    return static_cast<double>(::timegm(&tm)) + sec;
}

MachineInfo to_machine(const nlohmann::json &m) {
    MachineInfo out;
    out.id = jsonr::text(m, "id", "", 40);
    std::string name = jsonr::text(m, "name", "", 80);
    // berth names its machines berth-NAME: the label berth uses elsewhere is berth:NAME.
    if (name.rfind("berth-", 0) == 0) out.label = berth_label(name.substr(6));
    std::string st = jsonr::text(m, "state", "", 40);
    if (st == "ready")
        out.state = MachineState::running;
    else if (st == "off")
        out.state = MachineState::stopped;
    else if (st == "provisioning")
        out.state = MachineState::provisioning;
    else
        out.state = MachineState::loading; // starting, stopping, restarting, serviceready, ...
    out.message = st;
    std::string ip = jsonr::text(m, "publicIp", "", 64);
    if (out.state == MachineState::running && !ip.empty()) {
        out.ssh.host = ip;
        out.ssh.port = 22;
        out.ssh.user = "paperspace";
    }
    double rate = jsonr::num(m, "usageRate");
    bool dynamic_ip = jsonr::text(m, "publicIpType", "", 20) != "static";
    out.rent_per_hour = rate + (dynamic_ip ? public_ip_per_hour : 0);
    out.storage_per_hour = jsonr::num(m, "storageRate");
    if (!dynamic_ip && !ip.empty()) out.storage_per_hour += public_ip_per_hour;
    out.created_at = epoch_of(jsonr::text(m, "dtCreated", "", 40));
    if (out.state == MachineState::running)
        out.running_since = epoch_of(jsonr::text(m, "dtModified", "", 40));
    return out;
}

} // namespace berth::paperspace
