// Small string helpers with no berth knowledge.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace berth::str {

std::vector<std::string> split(std::string_view s, char sep);
std::string trim(std::string_view s);
std::string join(const std::vector<std::string> &parts, std::string_view sep);
bool contains(std::string_view hay, std::string_view needle);

// Damerau-Levenshtein (optimal string alignment) distance, for "did you mean".
std::size_t edit_distance(std::string_view a, std::string_view b);

// The closest candidate within a distance of max(1, len/3), or nullopt.
std::optional<std::string> closest(std::string_view word, const std::vector<std::string> &cands);

// 1536 -> "1.5 KiB"; exact bytes below 1 KiB.
std::string human_bytes(std::uint64_t n);

// "2.5 ms", "1.20 s".
std::string human_duration(double seconds);

// Lowercase hex of raw bytes.
std::string hex(const unsigned char *data, std::size_t n);

// Quote for /bin/sh: 'it'\''s'.
std::string shell_quote(std::string_view s);

} // namespace berth::str
