#include "store/compress.hpp"

#include <zstd.h>

namespace berth::store {

std::size_t compress_append(std::string_view raw, std::uint8_t &flags, std::string &out) {
    flags = k_raw;
    static thread_local ZSTD_CCtx *cctx = ZSTD_createCCtx();
    std::size_t start = out.size();
    auto as_is = [&] {
        flags = k_raw;
        out.resize(start);
        out.append(raw);
        return raw.size();
    };
    if (raw.size() < 512) return as_is();
    // A 64 KiB sample first: incompressible data (JPEGs, archives) is stored raw at once.
    std::size_t sample = raw.size() < 65536 ? raw.size() : 65536;
    static thread_local std::string probe;
    probe.resize(ZSTD_compressBound(sample));
    std::size_t n = ZSTD_compressCCtx(cctx, probe.data(), probe.size(), raw.data(), sample, 1);
    if (ZSTD_isError(n) || n > sample * 97 / 100) return as_is();
    out.resize(start + ZSTD_compressBound(raw.size()));
    n = ZSTD_compressCCtx(cctx, out.data() + start, out.size() - start, raw.data(), raw.size(), 1);
    if (ZSTD_isError(n) || n >= raw.size()) return as_is();
    out.resize(start + n);
    flags = k_zstd;
    return n;
}

std::string compress(std::string_view raw, std::uint8_t &flags) {
    flags = k_raw;
    if (raw.size() < 512) return std::string(raw);
    static thread_local ZSTD_CCtx *cctx = ZSTD_createCCtx();
    static thread_local std::string buf;
    std::size_t sample = raw.size() < 65536 ? raw.size() : 65536;
    buf.resize(ZSTD_compressBound(sample));
    std::size_t n = ZSTD_compressCCtx(cctx, buf.data(), buf.size(), raw.data(), sample, 1);
    if (ZSTD_isError(n) || n > sample * 97 / 100) return std::string(raw); // incompressible
    buf.resize(ZSTD_compressBound(raw.size()));
    n = ZSTD_compressCCtx(cctx, buf.data(), buf.size(), raw.data(), raw.size(), 1);
    if (ZSTD_isError(n) || n >= raw.size()) return std::string(raw);
    flags = k_zstd;
    return buf.substr(0, n);
}

Result<std::string> decompress(std::string_view stored, std::uint8_t flags, std::size_t raw_len,
                               std::size_t max) {
    if (raw_len > max)
        return fail("stored object claims " + std::to_string(raw_len) + " bytes, over the " +
                    std::to_string(max >> 20) + " MiB the format allows");
    if (flags == k_raw) {
        if (stored.size() != raw_len) return fail("stored chunk has the wrong length");
        return std::string(stored);
    }
    if (flags != k_zstd) return fail("unknown chunk encoding " + std::to_string(flags));
    static thread_local ZSTD_DCtx *dctx = ZSTD_createDCtx();
    auto frame = ZSTD_getFrameContentSize(stored.data(), stored.size());
    if (frame != ZSTD_CONTENTSIZE_UNKNOWN && frame != raw_len)
        return fail("stored chunk does not decompress to its recorded length");
    std::string out(raw_len, '\0');
    std::size_t n = ZSTD_decompressDCtx(dctx, out.data(), out.size(), stored.data(), stored.size());
    if (ZSTD_isError(n) || n != raw_len) return fail("stored chunk does not decompress");
    return out;
}

} // namespace berth::store
