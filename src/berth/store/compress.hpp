// zstd when it helps: a 64 KiB sample is compressed first, and data that does not shrink
// (JPEGs, already-compressed archives) is stored as is without paying for a full attempt.
#pragma once

#include "util/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace berth::store {

enum : std::uint8_t { k_raw = 0, k_zstd = 1 };

// The largest plain chunk or tree the format allows: a length read from a repository file
// beyond these is damage (or an attack), refused before anything is allocated.
inline constexpr std::size_t k_max_chunk = 64u << 20;
inline constexpr std::size_t k_max_tree = 1u << 30;

// Returns the bytes to store and sets flags to k_raw or k_zstd.
std::string compress(std::string_view raw, std::uint8_t &flags);
// The same, appended to `out` (no intermediate copy); returns how many bytes it appended.
std::size_t compress_append(std::string_view raw, std::uint8_t &flags, std::string &out);

// The plain bytes; fails if the data is damaged, not raw_len long, or raw_len is over `max`.
Result<std::string> decompress(std::string_view stored, std::uint8_t flags, std::size_t raw_len,
                               std::size_t max = k_max_chunk);

} // namespace berth::store
