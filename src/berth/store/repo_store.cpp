#include "store/repo_store.hpp"

#include "store/compress.hpp"

namespace berth::store {

Result<std::size_t> RepoStore::add_plain(const ChunkId &id, std::string_view raw) {
    std::uint8_t flags = k_raw;
    auto stored = compress(raw, flags);
    BERTH_TRY(add(id, static_cast<std::uint32_t>(raw.size()), flags, stored));
    return stored.size();
}

} // namespace berth::store
