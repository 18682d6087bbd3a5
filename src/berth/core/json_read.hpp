// Reading JSON that came from outside (provider APIs, files on a rented machine) without
// trusting its shape. nlohmann's `value()` throws when a field has another type than the
// default (`"is_bid": null`, `"id": "123"`): these never throw. The lenient readers accept what
// APIs really send (numbers as strings, null for absent); `require_*` fail naming the field.
#pragma once

#include "util/result.hpp"

#include <nlohmann/json.hpp>
#include <string>

namespace berth::jsonr {

// A number, or a string holding one; else `def`.
double num(const nlohmann::json &j, const char *key, double def = 0);
// An integer (or an integral number or a string of digits); else `def`.
long long integer(const nlohmann::json &j, const char *key, long long def = 0);
// true/false, 0/1, "true"/"false"; else `def` (null included).
bool boolean(const nlohmann::json &j, const char *key, bool def = false);
// A string (cut to `max` bytes, invalid UTF-8 replaced), a number as text; else `def`.
std::string text(const nlohmann::json &j, const char *key, const std::string &def = {},
                 std::size_t max = 4096);
// An id: a positive integer or a string of 1..20 digits, as text; else "".
std::string id(const nlohmann::json &j, const char *key);

// The same, failing with kind malformed: "<what>: field 'id' is missing" / "is not a number".
Result<long long> require_integer(const nlohmann::json &j, const char *key,
                                  const std::string &what);
Result<std::string> require_id(const nlohmann::json &j, const char *key, const std::string &what);

// s with invalid UTF-8 sequences replaced by '?' and cut to max bytes (on a boundary): data
// from outside (a key, a known_hosts block keep their newlines).
std::string clean_text(const std::string &s, std::size_t max = 4096);
// The same, and control characters (C0, DEL, C1) replaced by '?' too: words from outside shown
// to the user, safe on a terminal and on one line.
std::string clean_line(const std::string &s, std::size_t max = 4096);

} // namespace berth::jsonr
