// parse_search with simdjson (the `berth` build): a 10,000-offer answer is 23 MB of JSON.
#include "provider/vast/vast_api.hpp"

#include <simdjson.h>

namespace berth::vast {

namespace {

nlohmann::json to_json(simdjson::dom::element e) {
    using T = simdjson::dom::element_type;
    switch (e.type()) {
    case T::INT64: {
        std::int64_t v = 0;
        if (e.get(v)) return nullptr;
        return v;
    }
    case T::UINT64: {
        std::uint64_t v = 0;
        if (e.get(v)) return nullptr;
        return v;
    }
    case T::DOUBLE: {
        double v = 0;
        if (e.get(v)) return nullptr;
        return v;
    }
    case T::STRING: {
        std::string_view v;
        if (e.get(v)) return nullptr;
        return std::string(v);
    }
    case T::BOOL: {
        bool v = false;
        if (e.get(v)) return nullptr;
        return v;
    }
    case T::NULL_VALUE:
        return nullptr;
    case T::ARRAY: {
        auto out = nlohmann::json::array();
        simdjson::dom::array a;
        if (!e.get(a))
            for (auto x : a)
                out.push_back(to_json(x));
        return out;
    }
    case T::OBJECT: {
        auto out = nlohmann::json::object();
        simdjson::dom::object o;
        if (!e.get(o))
            for (auto [k, v] : o)
                out[std::string(k)] = to_json(v);
        return out;
    }
    }
    return nullptr;
}

} // namespace

Result<std::vector<nlohmann::json>> parse_search(const http::Response &r,
                                                 const std::vector<std::string> *keep) {
    BERTH_TRY(check_search_answer(r));
    auto bad = [] { return tl::unexpected(not_an_offer_list()); };
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(simdjson::padded_string(r.body)).get(doc)) return bad();
    simdjson::dom::array offers;
    if (!doc.is_object() || doc["offers"].get_array().get(offers)) return bad();
    std::vector<nlohmann::json> out;
    out.reserve(offers.size());
    for (auto o : offers) {
        simdjson::dom::object obj;
        if (o.get_object().get(obj)) return bad();
        if (!keep) {
            out.push_back(to_json(o));
            continue;
        }
        auto row = nlohmann::json::object();
        for (auto [k, v] : obj)
            for (const auto &want : *keep)
                if (k == want) {
                    row[want] = to_json(v);
                    break;
                }
        out.push_back(std::move(row));
    }
    return out;
}

} // namespace berth::vast
