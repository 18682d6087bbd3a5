#include "offers/filter.hpp"

#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>

namespace berth::offers {

namespace {

std::optional<double> as_number(const nlohmann::json &v) {
    if (v.is_number()) return v.get<double>();
    if (v.is_boolean()) return v.get<bool>() ? 1.0 : 0.0;
    if (v.is_string()) {
        const auto &s = v.get_ref<const std::string &>();
        if (s.empty() || s.size() > 64) return std::nullopt;
        char *end = nullptr;
        double d = std::strtod(s.c_str(), &end);
        if (*end == 0 && std::isfinite(d)) return d;
    }
    return std::nullopt;
}

std::optional<bool> as_bool(const nlohmann::json &v) {
    if (v.is_boolean()) return v.get<bool>();
    if (v.is_string()) {
        const auto &s = v.get_ref<const std::string &>();
        if (s == "true" || s == "True") return true;
        if (s == "false" || s == "False") return false;
    }
    return std::nullopt;
}

// -1, 0, 1, or nullopt when the two cannot be compared.
std::optional<int> compare(const nlohmann::json &have, const nlohmann::json &want) {
    if (have.is_null() || want.is_null())
        return have.is_null() && want.is_null() ? std::optional<int>(0) : std::nullopt;
    if (have.is_boolean()) {
        auto w = as_bool(want);
        if (!w) return std::nullopt;
        return have.get<bool>() == *w ? 0 : (have.get<bool>() ? 1 : -1);
    }
    auto h = as_number(have), w = as_number(want);
    if (h && w && !have.is_string()) return *h < *w ? -1 : (*h > *w ? 1 : 0);
    if (have.is_string() && want.is_string()) {
        int c = have.get_ref<const std::string &>().compare(want.get_ref<const std::string &>());
        return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    if (h && w) return *h < *w ? -1 : (*h > *w ? 1 : 0);
    return std::nullopt;
}

bool test(const std::string &op, const nlohmann::json *have, const nlohmann::json &want) {
    if (op == "in" || op == "notin") {
        bool found = false;
        if (have && want.is_array())
            for (const auto &w : want)
                found = found || compare(*have, w) == 0;
        return op == "in" ? found : !found;
    }
    if (!have) return op == "neq";
    auto c = compare(*have, want);
    if (op == "neq") return !c || *c != 0;
    if (!c) return false;
    if (op == "eq") return *c == 0;
    if (op == "lt") return *c < 0;
    if (op == "lte") return *c <= 0;
    if (op == "gt") return *c > 0;
    if (op == "gte") return *c >= 0;
    return false;
}

} // namespace

nlohmann::json filter_of(const nlohmann::json &search) {
    nlohmann::json f = nlohmann::json::object();
    if (!search.is_object()) return f;
    for (const auto &[k, v] : search.items())
        if (k != "order" && k != "type" && k != "limit" && k != "allocated_storage" &&
            v.is_object())
            f[k] = v;
    return f;
}

bool matches(const nlohmann::json &filter, const nlohmann::json &fields) {
    if (!filter.is_object()) return true;
    for (const auto &[field, ops] : filter.items()) {
        if (!ops.is_object()) continue;
        auto it = fields.find(field);
        const nlohmann::json *have = it == fields.end() ? nullptr : &*it;
        for (const auto &[op, want] : ops.items())
            if (!test(op, have, want)) return false;
    }
    return true;
}

} // namespace berth::offers
