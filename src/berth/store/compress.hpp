// zstd when it helps: a 64 KiB sample is compressed first, and data that does not shrink
// (JPEGs, already-compressed archives) is stored as is without paying for a full attempt.
#pragma once

#include "util/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace berth::store {

enum : std::uint8_t { k_raw = 0, k_zstd = 1 };

// Returns the bytes to store and sets flags to k_raw or k_zstd.
std::string compress(std::string_view raw, std::uint8_t &flags);

// The plain bytes; fails if the data is damaged or not raw_len long.
Result<std::string> decompress(std::string_view stored, std::uint8_t flags, std::size_t raw_len);

} // namespace berth::store
