#include "offers/query.hpp"

#include "util/strings.hpp"

#include <algorithm>
#include <cstring>
#include <map>

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

namespace {

// One "field op value" term, as the CLI's regular expression reads it (SPEC §2.3):
//   ([a-zA-Z0-9_]+)( *[=><!]+| +(?:[lg]te?|nin|neq|eq|not ?eq|not ?in|in) )?( *)
//   (\[[^\]]+\]|"[^"]+"|[^ ]+)?( *)
// matched by hand: std::regex backtracks recursively (a 28,000-character value overflowed the
// stack) and is quadratic on long lists. This scanner is one pass over the text.
struct Term {
    std::string field, op, value;
};

bool field_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// Length of a word operator at q[i] that is followed by a space, or 0.
std::size_t word_op(const std::string &q, std::size_t i) {
    static const char *ops[] = {"lte", "lt",    "gte",    "gt",    "nin",    "neq",
                                "eq",  "noteq", "not eq", "notin", "not in", "in"};
    for (const char *o : ops) {
        std::size_t n = std::strlen(o);
        if (q.compare(i, n, o) == 0 && i + n < q.size() && q[i + n] == ' ') return n;
    }
    return 0;
}

// Scans terms from the start of q; returns how many characters they consumed.
std::size_t scan_terms(const std::string &q, std::vector<Term> &out) {
    std::size_t i = 0, n = q.size();
    while (i < n && field_char(q[i])) {
        Term t;
        std::size_t f = i;
        while (i < n && field_char(q[i]))
            ++i;
        t.field = q.substr(f, i - f);
        // The operator: spaces and symbols, or spaces, a word and one space.
        std::size_t j = i;
        while (j < n && q[j] == ' ')
            ++j;
        std::size_t k = j;
        while (k < n && std::strchr("=><!", q[k]) && q[k])
            ++k;
        if (k > j) {
            t.op = q.substr(j, k - j);
            i = k;
        } else if (j > i) {
            if (std::size_t w = word_op(q, j)) {
                t.op = q.substr(j, w);
                i = j + w + 1;
            }
        }
        while (i < n && q[i] == ' ')
            ++i;
        // The value: [list], "quoted", or a word.
        std::size_t v = i;
        if (i < n && q[i] == '[') {
            auto close = q.find(']', i + 1);
            if (close != std::string::npos && close > i + 1) i = close + 1;
        }
        if (i == v && i < n && q[i] == '"') {
            auto close = q.find('"', i + 1);
            if (close != std::string::npos && close > i + 1) i = close + 1;
        }
        if (i == v)
            while (i < n && q[i] != ' ')
                ++i;
        t.value = q.substr(v, i - v);
        while (i < n && q[i] == ' ')
            ++i;
        out.push_back(std::move(t));
    }
    return i;
}

bool valid_utf8(const std::string &s) {
    std::size_t i = 0;
    while (i < s.size()) {
        unsigned char c = s[i];
        int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > s.size()) return false;
        for (int k = 1; k < len; ++k)
            if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
        i += len;
    }
    return true;
}

} // namespace

Result<> parse_query(const std::string &query, nlohmann::json &res) {
    if (query.size() > k_max_query_length)
        return fail("the query is " + std::to_string(query.size()) + " characters long",
                    "a query has at most " + std::to_string(k_max_query_length) + " characters", 2);
    if (!valid_utf8(query))
        return fail("the query is not valid UTF-8", "retype it in plain text", 2);
    std::string q = str::trim(query);
    std::vector<Term> matches;
    std::size_t consumed = scan_terms(q, matches);
    if (consumed != q.size()) {
        std::string rest = q.substr(consumed);
        return fail("cannot parse the query at '" + rest.substr(0, 40) + "'",
                    "write field op value, e.g. 'gpu_ram>=16 num_gpus=1'; quote the whole query",
                    2);
    }
    if (matches.size() > k_max_query_terms)
        return fail("the query has " + std::to_string(matches.size()) + " terms",
                    "a query has at most " + std::to_string(k_max_query_terms) + " terms", 2);
    const auto &known = known_fields();
    for (const auto &m : matches) {
        std::string field = m.field, op = str::trim(m.op), value = m.value;
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
            if (list.size() > k_max_list_items)
                return fail("the list for '" + field + "' has " + std::to_string(list.size()) +
                                " items",
                            "a list has at most " + std::to_string(k_max_list_items) + " items", 2);
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
