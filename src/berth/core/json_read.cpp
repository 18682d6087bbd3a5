#include "core/json_read.hpp"

#include <cmath>
#include <cstdlib>

namespace berth::jsonr {

namespace {

const nlohmann::json *field(const nlohmann::json &j, const char *key) {
    if (!j.is_object()) return nullptr;
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
}

bool parse_double(const std::string &s, double &out) {
    if (s.empty() || s.size() > 64) return false;
    char *end = nullptr;
    out = std::strtod(s.c_str(), &end);
    return end && *end == 0 && std::isfinite(out);
}

} // namespace

namespace {
std::string clean(const std::string &s, std::size_t max, bool one_line);
} // namespace

std::string clean_text(const std::string &s, std::size_t max) {
    return clean(s, max, false);
}

std::string clean_line(const std::string &s, std::size_t max) {
    return clean(s, max, true);
}

namespace {
std::string clean(const std::string &s, std::size_t max, bool one_line) {
    std::string out;
    out.reserve(std::min(s.size(), max));
    std::size_t i = 0;
    while (i < s.size()) {
        unsigned char c = s[i];
        std::size_t len = c < 0x80         ? 1
                          : (c >> 5) == 6  ? 2
                          : (c >> 4) == 14 ? 3
                          : (c >> 3) == 30 ? 4
                                           : 0;
        bool ok = len > 0 && i + len <= s.size();
        for (std::size_t k = 1; ok && k < len; ++k)
            ok = (static_cast<unsigned char>(s[i + k]) >> 6) == 2;
        if (!ok) len = 1;
        // One line for a terminal: control characters (C0, DEL, C1 as U+0080..U+009F) would
        // reach it as escape sequences or break the line; each becomes '?'.
        if (ok && one_line &&
            ((len == 1 && (c < 0x20 || c == 0x7f)) ||
             (len == 2 && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0)))
            ok = false;
        if (out.size() + (ok ? len : 1) > max) break;
        if (ok)
            out.append(s, i, len);
        else
            out.push_back('?');
        i += len;
    }
    return out;
}
} // namespace

double num(const nlohmann::json &j, const char *key, double def) {
    auto *v = field(j, key);
    if (!v) return def;
    if (v->is_number()) {
        double d = v->get<double>();
        return std::isfinite(d) ? d : def;
    }
    double d = 0;
    if (v->is_string() && parse_double(v->get_ref<const std::string &>(), d)) return d;
    return def;
}

long long integer(const nlohmann::json &j, const char *key, long long def) {
    auto *v = field(j, key);
    if (!v) return def;
    if (v->is_number_integer()) return v->get<long long>();
    if (v->is_number_float()) {
        double d = v->get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
            return static_cast<long long>(d);
        return def;
    }
    if (v->is_string()) {
        const auto &s = v->get_ref<const std::string &>();
        if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
            return def;
        return std::atoll(s.c_str());
    }
    return def;
}

bool boolean(const nlohmann::json &j, const char *key, bool def) {
    auto *v = field(j, key);
    if (!v) return def;
    if (v->is_boolean()) return v->get<bool>();
    if (v->is_number()) return v->get<double>() != 0;
    if (v->is_string()) {
        const auto &s = v->get_ref<const std::string &>();
        if (s == "true" || s == "True" || s == "1") return true;
        if (s == "false" || s == "False" || s == "0") return false;
    }
    return def;
}

std::string text(const nlohmann::json &j, const char *key, const std::string &def,
                 std::size_t max) {
    auto *v = field(j, key);
    if (!v) return def;
    if (v->is_string()) return clean_text(v->get_ref<const std::string &>(), max);
    if (v->is_number() || v->is_boolean()) return v->dump();
    return def;
}

std::string id(const nlohmann::json &j, const char *key) {
    auto n = integer(j, key, -1);
    return n > 0 ? std::to_string(n) : std::string();
}

Result<long long> require_integer(const nlohmann::json &j, const char *key,
                                  const std::string &what) {
    auto *v = field(j, key);
    if (!v)
        return fail(ErrorKind::malformed, what + ": field '" + key + "' is missing",
                    "retry later; if it persists, the API changed");
    auto n = integer(j, key, -1);
    if (n < 0)
        return fail(
            ErrorKind::malformed,
            what + ": field '" + key + "' is not a number (" +
                clean_text(v->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 40) +
                ")",
            "retry later; if it persists, the API changed");
    return n;
}

Result<std::string> require_id(const nlohmann::json &j, const char *key, const std::string &what) {
    auto n = require_integer(j, key, what);
    if (!n) return tl::unexpected(n.error());
    if (*n <= 0)
        return fail(ErrorKind::malformed, what + ": field '" + key + "' is not a positive id",
                    "retry later; if it persists, the API changed");
    return std::to_string(*n);
}

} // namespace berth::jsonr
