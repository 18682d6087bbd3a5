// Encryption at rest. A repository made by this berth has one random master key: 32 bytes
// that encrypt (AES-256-GCM, a fresh 96-bit random nonce per object) and 32 that name chunks
// and trees (HMAC-SHA256 of the plain bytes, so equal data still deduplicates but the storage
// host cannot test a guess of the content against a name). The master key is kept either
// wrapped by a passphrase (scrypt, in the repository's keys/ folder) or in a key file.
#pragma once

#include "store/objects.hpp"
#include "util/result.hpp"

#include <array>
#include <memory>
#include <string>
#include <string_view>

namespace berth::store {

struct MasterKey {
    std::array<std::uint8_t, 32> enc{}, mac{};
    static MasterKey random();
    std::string to_json() const; // {"enc":hex,"mac":hex}: only into sealed places or key files
    static Result<MasterKey> from_json(const std::string &text);
};

// How chunks and trees are named: SHA-256 in a plain repository, HMAC-SHA256 under the
// repository's id key in an encrypted one. Copyable; the agent gets only this half of a key.
class IdHasher {
public:
    IdHasher() = default;
    explicit IdHasher(const std::array<std::uint8_t, 32> &mac) : m_keyed(true), m_mac(mac) {}
    ChunkId operator()(const void *data, std::size_t n) const;
    ChunkId operator()(std::string_view s) const { return (*this)(s.data(), s.size()); }
    bool keyed() const { return m_keyed; }
    std::string key_hex() const;                              // "" when not keyed
    static Result<IdHasher> from_hex(const std::string &hex); // "" -> plain SHA-256

private:
    bool m_keyed = false;
    std::array<std::uint8_t, 32> m_mac{};
};

// Authenticated encryption of one object. `aad` binds it to its name, so a host cannot swap
// two objects; open() fails on any flipped byte, a wrong key or the wrong name.
class Sealer {
public:
    explicit Sealer(const std::array<std::uint8_t, 32> &key) : m_key(key) {}
    static constexpr std::size_t overhead = 12 + 16; // nonce + tag
    void seal_append(std::string_view plain, std::string_view aad, std::string &out) const;
    std::string seal(std::string_view plain, std::string_view aad) const {
        std::string out;
        seal_append(plain, aad, out);
        return out;
    }
    Result<std::string> open(std::string_view sealed, std::string_view aad) const;

private:
    std::array<std::uint8_t, 32> m_key;
};

// A key entry for keys/: the master key sealed under a key derived from the passphrase with
// scrypt (N=2^15, r=8, p=1: 32 MiB and about 0.1 s per try). Returns JSON text.
Result<std::string> wrap_master_key(const MasterKey &k, const std::string &passphrase);
// Fails with "wrong passphrase" when it does not open (or the entry is damaged).
Result<MasterKey> unwrap_master_key(const std::string &entry_json, const std::string &passphrase);

} // namespace berth::store
