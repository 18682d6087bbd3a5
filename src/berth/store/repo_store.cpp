#include "store/repo_store.hpp"

#include "store/compress.hpp"

namespace berth::store {

Result<std::size_t> RepoStore::add_plain(const ChunkId &id, std::string_view raw) {
    std::uint8_t flags = k_raw;
    auto stored = compress(raw, flags);
    BERTH_TRY(add(id, static_cast<std::uint32_t>(raw.size()), flags, stored));
    return stored.size();
}

Result<std::string> RepoStore::read(const ChunkId &id) {
    std::uint32_t raw_len = 0;
    auto stored = read_stored(id, raw_len);
    if (!stored) return tl::unexpected(stored.error());
    auto raw = decompress(stored->second, stored->first, raw_len);
    if (!raw) return raw;
    if (sha256_id(raw->data(), raw->size()) != id)
        return fail("chunk " + to_hex(id).substr(0, 16) + " in " + location() + " is damaged",
                    "the repository's disk corrupted it; run `berth verify`");
    return raw;
}

} // namespace berth::store
