#include "store/chunker.hpp"

#include <array>
#include <bit>

namespace berth::store {

namespace {

// 256 pseudo-random 64-bit values from splitmix64 with a fixed seed: the table is part of the
// repository format (cut points must not change between versions).
constexpr std::array<std::uint64_t, 256> make_gear() {
    std::array<std::uint64_t, 256> g{};
    std::uint64_t x = 0x62657274682d6364ull; // "berth-cd"
    for (auto &v : g) {
        x += 0x9e3779b97f4a7c15ull;
        std::uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        v = z ^ (z >> 31);
    }
    return g;
}

constexpr auto k_gear = make_gear();

// A mask with `bits` one-bits spread over the high half of the word (the hash's best bits).
constexpr std::uint64_t spread_mask(int bits) {
    std::uint64_t m = 0;
    for (int i = 0; i < bits; ++i)
        m |= 1ull << (63 - 2 * i);
    return m;
}

} // namespace

std::size_t find_cut(const std::uint8_t *data, std::size_t n, bool eof, const ChunkerParams &p) {
    if (n <= p.min) return eof ? n : 0;
    const int bits = std::bit_width(p.avg) - 1;
    const std::uint64_t mask_s = spread_mask(bits + 2); // harder before avg
    const std::uint64_t mask_l = spread_mask(bits - 2); // easier after
    std::size_t normal = p.avg < n ? p.avg : n;
    std::size_t limit = p.max < n ? p.max : n;
    std::uint64_t h = 0;
    std::size_t i = p.min;
    for (; i < normal; ++i) {
        h = (h << 1) + k_gear[data[i]];
        if (!(h & mask_s)) return i + 1;
    }
    for (; i < limit; ++i) {
        h = (h << 1) + k_gear[data[i]];
        if (!(h & mask_l)) return i + 1;
    }
    if (limit == p.max) return p.max;
    return eof ? n : 0;
}

} // namespace berth::store
