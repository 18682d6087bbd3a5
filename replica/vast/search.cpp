#include "search.hpp"

#include <chrono>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>

namespace replica {

namespace {

const std::map<std::string, std::string> k_alias = {
    {"cuda_vers", "cuda_max_good"},           {"dph", "dph_total"},
    {"dlperf_usd", "dlperf_per_dphtotal"},    {"flops_usd", "flops_per_dphtotal"},
    {"display_active", "gpu_display_active"}, {"ubuntu_version", "os_version"},
    {"driver_version", "driver_vers"}};

const std::vector<std::string> k_special = {"order", "type", "limit", "allocated_storage",
                                            "disable_bundling"};

bool as_number(const nlohmann::json &v, double &out) {
    if (v.is_number()) {
        out = v.get<double>();
        return true;
    }
    if (v.is_boolean()) {
        out = v.get<bool>() ? 1 : 0;
        return true;
    }
    if (v.is_string()) {
        const std::string &s = v.get_ref<const std::string &>();
        char *end = nullptr;
        out = std::strtod(s.c_str(), &end);
        return !s.empty() && end && *end == '\0';
    }
    return false;
}

// The value the filter sees for a field of an offer.
nlohmann::json field_value(const nlohmann::json &offer, const std::string &field) {
    if (field == "geolocation") {
        std::string g = offer.value("geolocation", std::string());
        auto pos = g.rfind(", ");
        return pos == std::string::npos ? g : g.substr(pos + 2);
    }
    if (field == "external")
        return offer.contains("external") && !offer["external"].is_null() ? offer["external"]
                                                                          : nlohmann::json(false);
    if (field == "verified") return offer.value("verification", std::string()) == "verified";
    if (field == "datacenter") return offer.value("hosting_type", 0) == 1;
    auto it = offer.find(field);
    return it == offer.end() ? nlohmann::json() : *it;
}

int compare(const nlohmann::json &a, const nlohmann::json &b) {
    double x, y;
    if (!a.is_string() || !b.is_string()) {
        if (as_number(a, x) && as_number(b, y)) return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.is_boolean() || b.is_boolean()) {
        bool p = a.is_boolean() ? a.get<bool>() : (as_number(a, x) && x != 0);
        bool q = b.is_boolean() ? b.get<bool>() : (b.is_string() && (b == "true" || b == "True"));
        return p == q ? 0 : 1;
    }
    if (a.is_null() || b.is_null()) return a.is_null() && b.is_null() ? 0 : 2;
    std::string s = a.is_string() ? a.get<std::string>() : a.dump();
    std::string t = b.is_string() ? b.get<std::string>() : b.dump();
    return s < t ? -1 : s > t ? 1 : 0;
}

bool matches(const nlohmann::json &offer, const std::string &field, const std::string &op,
             const nlohmann::json &want) {
    nlohmann::json have = field_value(offer, field);
    if (op == "in" || op == "notin") {
        if (!want.is_array())
            throw std::invalid_argument("'" + op + "' on " + field + " needs a list");
        bool found = false;
        for (const auto &w : want)
            found |= compare(have, w) == 0;
        return op == "in" ? found : !found;
    }
    if (have.is_null() && op != "neq") return false;
    int c = compare(have, want);
    if (op == "eq") return c == 0;
    if (op == "neq") return c != 0;
    if (c == 2) return false;
    if (op == "gt") return c > 0;
    if (op == "gte") return c >= 0;
    if (op == "lt") return c < 0;
    if (op == "lte") return c <= 0;
    throw std::invalid_argument("unknown operator '" + op + "'");
}

} // namespace

void price(nlohmann::json &o, double alloc, bool bid) {
    double base = bid ? o.value("min_bid", 0.0) : o.value("dph_base", 0.0);
    double storage_hour = o.value("storage_cost", 0.0) * alloc / 720.0;
    double total = base + storage_hour;
    o["storage_total_cost"] = storage_hour;
    o["dph_total"] = total;
    o["discounted_dph_total"] = total;
    if (total > 0) {
        o["dlperf_per_dphtotal"] = o.value("dlperf", 0.0) / total;
        o["flops_per_dphtotal"] = o.value("total_flops", 0.0) / total;
    }
    o["search"] = {{"gpuCostPerHour", base},
                   {"diskHour", storage_hour},
                   {"totalHour", total},
                   {"discountTotalHour", 0},
                   {"discountedTotalPerHour", total}};
    o["instance"] = {{"gpuCostPerHour", 0},
                     {"diskHour", storage_hour},
                     {"totalHour", storage_hour},
                     {"discountTotalHour", 0},
                     {"discountedTotalPerHour", storage_hour}};
    o["is_bid"] = bid;
}

std::vector<nlohmann::json> search(const std::vector<nlohmann::json> &offers,
                                   const nlohmann::json &q,
                                   const std::function<bool(long long)> &rented) {
    if (!q.is_object()) throw std::invalid_argument("the query must be a JSON object");
    double alloc = 5.0;
    if (q.contains("allocated_storage") && !as_number(q["allocated_storage"], alloc))
        throw std::invalid_argument("allocated_storage must be a number");
    std::string type = q.value("type", std::string("on-demand"));
    bool bid = type == "bid" || type == "interruptible";
    std::vector<nlohmann::json> out;
    bool asks_rented = q.contains("rented");
    double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    for (const auto &offer : offers) {
        bool taken = rented && rented(offer.value("id", 0LL));
        if (taken && !asks_rented) continue;
        auto o = offer;
        if (taken) o["rented"] = true;
        // The contract's end is fixed; what is left of it shrinks as time passes.
        double end = o.value("end_date", 0.0);
        if (end > 0) o["duration"] = std::max(0.0, end - now);
        price(o, alloc, bid);
        bool ok = true;
        for (const auto &[key, cond] : q.items()) {
            if (std::find(k_special.begin(), k_special.end(), key) != k_special.end()) continue;
            auto al = k_alias.find(key);
            std::string field = al == k_alias.end() ? key : al->second;
            if (!cond.is_object())
                throw std::invalid_argument("filter on " + key + " must be an object of operators");
            for (const auto &[op, want] : cond.items())
                if (!matches(o, field, op, want)) {
                    ok = false;
                    break;
                }
            if (!ok) break;
        }
        if (ok) out.push_back(std::move(o));
    }
    nlohmann::json order = q.value("order", nlohmann::json::array({{"score", "desc"}}));
    std::stable_sort(out.begin(), out.end(), [&](const nlohmann::json &a, const nlohmann::json &b) {
        for (const auto &k : order) {
            if (!k.is_array() || k.empty()) continue;
            std::string f = k[0].get<std::string>();
            auto al = k_alias.find(f);
            if (al != k_alias.end()) f = al->second;
            bool desc = k.size() > 1 && k[1] == "desc";
            int c = compare(field_value(a, f), field_value(b, f));
            if (c == 0 || c == 2) continue;
            return desc ? c > 0 : c < 0;
        }
        return false;
    });
    std::size_t limit = 64; // the API's small default page (SPEC §2.1): callers must send limit
    if (q.contains("limit")) {
        double l;
        if (!as_number(q["limit"], l) || l < 0)
            throw std::invalid_argument("limit must be a number");
        limit = static_cast<std::size_t>(l);
    }
    if (out.size() > limit) out.resize(limit);
    return out;
}

} // namespace replica
