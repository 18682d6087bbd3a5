#include "offers/query.hpp"

#include "util/strings.hpp"

#include <algorithm>
#include <map>
#include <regex>

namespace berth::offers {

namespace {

const std::map<std::string, std::string> k_ops = {
    {">=", "gte"},      {">", "gt"},         {"gt", "gt"},     {"gte", "gte"},   {"<=", "lte"},
    {"<", "lt"},        {"lt", "lt"},        {"lte", "lte"},   {"!=", "neq"},    {"==", "eq"},
    {"=", "eq"},        {"eq", "eq"},        {"neq", "neq"},   {"noteq", "neq"}, {"not eq", "neq"},
    {"notin", "notin"}, {"not in", "notin"}, {"nin", "notin"}, {"in", "in"}};

const std::map<std::string, std::string> k_alias = {
    {"cuda_vers", "cuda_max_good"},           {"dph", "dph_total"},
    {"dlperf_usd", "dlperf_per_dphtotal"},    {"flops_usd", "flops_per_dphtotal"},
    {"display_active", "gpu_display_active"}, {"ubuntu_version", "os_version"}};

const std::map<std::string, double> k_multiplier = {
    {"cpu_ram", 1000.0}, {"gpu_ram", 1000.0}, {"gpu_total_ram", 1000.0}, {"duration", 86400.0}};

std::string alias(const std::string &f) {
    auto it = k_alias.find(f);
    return it == k_alias.end() ? f : it->second;
}

} // namespace

const std::vector<std::string> &known_fields() {
    static const std::vector<std::string> f = {
        "bw_nvlink", "compute_cap", "cpu_arch", "cpu_cores", "cpu_cores_effective", "cpu_ghz",
        "cpu_name", "cpu_ram", "credit_discount_max", "cuda_max_good", "datacenter",
        "direct_port_count", "discount_rate", "disk_bw", "disk_name", "disk_space", "dlperf",
        "dlperf_per_dphtotal", "dph_base", "dph_total", "driver_version", "driver_vers", "duration",
        "external", "flops_per_dphtotal", "geolocation", "gpu_arch", "gpu_display_active",
        "gpu_frac", "gpu_lanes", "gpu_max_power", "gpu_max_temp", "gpu_mem_bw", "gpu_name",
        "gpu_ram", "gpu_total_ram", "has_avx", "host_id", "hosting_type", "id", "inet_down",
        "inet_down_cost", "inet_up", "inet_up_cost", "is_bid", "machine_id", "min_bid", "mobo_name",
        "num_gpus", "os_version", "pci_gen", "pcie_bw", "public_ipaddr", "reliability",
        "reliability2", "rentable", "rented", "score", "static_ip", "storage_cost",
        "storage_total_cost", "total_flops", "verification", "verified", "vms_enabled",
        "cluster_id", "bundle_id", "ask_contract_id", "end_date", "start_date", "vericode",
        // the CLI's aliases
        "cuda_vers", "dph", "dlperf_usd", "flops_usd", "display_active", "ubuntu_version"};
    return f;
}

Result<long long> numeric_version(const std::string &v) {
    std::string digits;
    for (const auto &part : str::split(v, '.')) {
        if (part.empty() || part.size() > 3 ||
            part.find_first_not_of("0123456789") != std::string::npos)
            return fail("driver_version '" + v + "' is not a version like 535.86.05", "", 2);
        digits += std::string(3 - part.size(), '0') + part;
    }
    return std::stoll(digits);
}

Result<> parse_query(const std::string &query, nlohmann::json &res) {
    std::string q = str::trim(query);
    static const std::regex pattern(
        R"(([a-zA-Z0-9_]+)( *[=><!]+| +(?:[lg]te?|nin|neq|eq|not ?eq|not ?in|in) )?( *)(\[[^\]]+\]|"[^"]+"|[^ ]+)?( *))");
    std::string consumed;
    std::vector<std::smatch> matches;
    for (auto it = std::sregex_iterator(q.begin(), q.end(), pattern); it != std::sregex_iterator();
         ++it) {
        if (it->length(0) == 0) continue;
        if (static_cast<std::size_t>(it->position(0)) != consumed.size())
            break; // a gap: unconsumed
        consumed += it->str(0);
        matches.push_back(*it);
    }
    if (consumed != q) {
        std::string rest = q.substr(std::min(consumed.size(), q.size()));
        return fail("cannot parse the query at '" + rest.substr(0, 40) + "'",
                    "write field op value, e.g. 'gpu_ram>=16 num_gpus=1'; quote the whole query",
                    2);
    }
    const auto &known = known_fields();
    for (const auto &m : matches) {
        std::string field = m.str(1), op = str::trim(m.str(2)), value = m.str(4);
        // Python's value.strip(",[]")
        while (!value.empty() &&
               (value.front() == ',' || value.front() == '[' || value.front() == ']'))
            value.erase(0, 1);
        while (!value.empty() &&
               (value.back() == ',' || value.back() == '[' || value.back() == ']'))
            value.pop_back();
        if (std::find(known.begin(), known.end(), field) == known.end()) {
            auto near = str::closest(field, known);
            return fail("unknown query field '" + field + "'",
                        near ? "did you mean '" + *near + "'?" : "see `berth offers --help`", 2);
        }
        auto opit = k_ops.find(op);
        if (opit == k_ops.end())
            return fail("unknown operator '" + op + "' after '" + field + "'",
                        op.empty() ? "write field op value, e.g. " + field + "=1"
                                   : "use = != < <= > >= in notin",
                        2);
        std::string name = opit->second;
        field = alias(field);
        if (value.empty())
            return fail("no value for '" + field + "'", "write " + field + name + "VALUE", 2);
        if (value == "?" || value == "*" || value == "any") {
            if (name != "eq")
                return fail("'" + value + "' only makes sense with '=' (" + field + ")", "", 2);
            res.erase(field);
            continue;
        }
        nlohmann::json v =
            res.contains(field) && res[field].is_object() ? res[field] : nlohmann::json::object();
        auto clean = [](std::string s) {
            std::replace(s.begin(), s.end(), '_', ' ');
            while (!s.empty() && s.front() == '"')
                s.erase(0, 1);
            while (!s.empty() && s.back() == '"')
                s.pop_back();
            return s;
        };
        if (name == "in" || name == "notin") {
            nlohmann::json list = nlohmann::json::array();
            for (const auto &x : str::split(value, ','))
                if (!str::trim(x).empty()) list.push_back(clean(str::trim(x)));
            v[name] = list;
        } else if (field == "driver_version" && value.find('.') != std::string::npos) {
            auto n = numeric_version(value);
            if (!n) return tl::unexpected(n.error());
            v[name] = *n;
        } else if (k_multiplier.count(field)) {
            char *end = nullptr;
            double d = std::strtod(value.c_str(), &end);
            if (end == value.c_str() || *end)
                return fail(field + " needs a number, got '" + value + "'", "", 2);
            v[name] = d * k_multiplier.at(field);
        } else {
            std::string s = clean(value);
            if (s == "true" || s == "True")
                v[name] = true;
            else if (s == "false" || s == "False")
                v[name] = false;
            else if (s == "None" || s == "null")
                v[name] = nullptr;
            else
                v[name] = s;
        }
        res[field] = v;
    }
    return {};
}

Result<nlohmann::json> parse_order(const std::string &order) {
    nlohmann::json out = nlohmann::json::array();
    for (auto key : str::split(order, ',')) {
        key = str::trim(key);
        if (key.empty()) continue;
        std::string dir = "asc";
        if (key.back() == '-') dir = "desc";
        if (key.back() == '-' || key.back() == '+') key.pop_back();
        const auto &known = known_fields();
        if (std::find(known.begin(), known.end(), key) == known.end()) {
            auto near = str::closest(key, known);
            return fail("unknown sort field '" + key + "'",
                        near ? "did you mean '" + *near + "'?" : "", 2);
        }
        out.push_back({alias(key), dir});
    }
    return out;
}

nlohmann::json default_filters() {
    nlohmann::json j = nlohmann::json::object();
    j["verified"] = {{"eq", true}};
    j["external"] = {{"eq", false}};
    j["rentable"] = {{"eq", true}};
    j["rented"] = {{"eq", false}};
    return j;
}

Result<nlohmann::json> build_search(const SearchRequest &r) {
    nlohmann::json q = r.no_default ? nlohmann::json::object() : default_filters();
    BERTH_TRY(parse_query(r.query, q));
    auto order = parse_order(r.order);
    if (!order) return tl::unexpected(order.error());
    q["order"] = *order;
    std::string type = r.type == "interruptible" ? "bid" : r.type;
    if (type != "on-demand" && type != "bid" && type != "reserved")
        return fail("unknown offer type '" + r.type + "'",
                    "use on-demand, bid (interruptible) or reserved", 2);
    q["type"] = type;
    if (r.limit > 0) q["limit"] = r.limit;
    q["allocated_storage"] = r.storage_gb;
    return q;
}

} // namespace berth::offers
