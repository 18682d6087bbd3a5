// Content-defined chunking, FastCDC style: a gear rolling hash with normalized chunking.
//
// Why content-defined: an edit inside a big file (10 MiB rewritten inside a 512 MiB checkpoint)
// changes only the chunks around it, because cut points depend on the bytes, not on offsets.
// Normalization (a harder mask before the average size, an easier one after) keeps chunk sizes
// close to the average, so an edit costs about its own size plus one chunk on each side.
#pragma once

#include <cstddef>
#include <cstdint>

namespace berth::store {

struct ChunkerParams {
    std::size_t min = 128 << 10;
    std::size_t avg = 512 << 10;
    std::size_t max = 2 << 20;
};

// Length of the first chunk of data[0, n). When no cut is found and !eof, returns 0: give it
// more bytes (at least params.max, or up to the end of the input).
std::size_t find_cut(const std::uint8_t *data, std::size_t n, bool eof,
                     const ChunkerParams &p = {});

} // namespace berth::store
