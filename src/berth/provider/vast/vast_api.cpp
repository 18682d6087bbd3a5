#include "provider/vast/vast_api.hpp"

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

Result<std::vector<nlohmann::json>> parse_search(const http::Response &r) {
    if (r.status != 200) return fail("Vast.ai search failed: " + describe_error(r));
    if (r.content_type != "application/json")
        return fail("Vast.ai answered the search with Content-Type '" + r.content_type + "'",
                    "retry later");
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("offers") || !j["offers"].is_array())
        return fail("Vast.ai answered the search with something that is not an offer list",
                    "retry later");
    std::vector<nlohmann::json> out;
    out.reserve(j["offers"].size());
    for (auto &o : j["offers"])
        out.push_back(std::move(o)); // no copy of a 20 MB answer
    return out;
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

} // namespace berth::vast
