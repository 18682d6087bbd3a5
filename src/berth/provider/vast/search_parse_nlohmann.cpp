// parse_search with nlohmann-json, for the static agent build (Debian ships simdjson only as a
// shared library, and the agent never searches offers). Same contract as the simdjson one.
#include "provider/vast/vast_api.hpp"

namespace berth::vast {

Result<std::vector<nlohmann::json>> parse_search(const http::Response &r,
                                                 const std::vector<std::string> *keep) {
    BERTH_TRY(check_search_answer(r));
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("offers") || !j["offers"].is_array())
        return tl::unexpected(not_an_offer_list());
    std::vector<nlohmann::json> out;
    out.reserve(j["offers"].size());
    for (auto &o : j["offers"]) {
        if (!o.is_object()) return tl::unexpected(not_an_offer_list());
        if (!keep) {
            out.push_back(std::move(o));
            continue;
        }
        auto row = nlohmann::json::object();
        for (const auto &k : *keep)
            if (o.contains(k)) row[k] = std::move(o[k]);
        out.push_back(std::move(row));
    }
    return out;
}

} // namespace berth::vast
