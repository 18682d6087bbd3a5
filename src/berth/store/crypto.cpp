#include "store/crypto.hpp"

#include "util/strings.hpp"

#include <cstring>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <stdexcept>
#include <sys/random.h>

namespace berth::store {

namespace {

void random_bytes(std::uint8_t *out, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::getrandom(out + got, n - got, 0);
        if (r <= 0) throw std::runtime_error("getrandom failed");
        got += static_cast<std::size_t>(r);
    }
}

bool unhex(const std::string &hex, std::uint8_t *out, std::size_t n) {
    if (hex.size() != 2 * n) return false;
    for (std::size_t i = 0; i < n; ++i) {
        auto nib = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            return -1;
        };
        int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return true;
}

struct CipherCtx {
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    ~CipherCtx() { EVP_CIPHER_CTX_free(c); }
};

constexpr std::uint64_t k_scrypt_n = 1u << 15, k_scrypt_r = 8, k_scrypt_p = 1;

Result<std::array<std::uint8_t, 32>> scrypt(const std::string &pass, const std::uint8_t *salt,
                                            std::size_t salt_len, std::uint64_t n, std::uint64_t r,
                                            std::uint64_t p) {
    std::array<std::uint8_t, 32> out{};
    if (EVP_PBE_scrypt(pass.data(), pass.size(), salt, salt_len, n, r, p, 256u << 20, out.data(),
                       out.size()) != 1)
        return fail("the key derivation (scrypt) failed", "the key entry's parameters are bad");
    return out;
}

} // namespace

MasterKey MasterKey::random() {
    MasterKey k;
    random_bytes(k.enc.data(), k.enc.size());
    random_bytes(k.mac.data(), k.mac.size());
    return k;
}

std::string MasterKey::to_json() const {
    return nlohmann::json{{"enc", str::hex(enc.data(), enc.size())},
                          {"mac", str::hex(mac.data(), mac.size())}}
        .dump();
}

Result<MasterKey> MasterKey::from_json(const std::string &text) {
    auto j = nlohmann::json::parse(text, nullptr, false);
    MasterKey k;
    if (!j.is_object() || !j.contains("enc") || !j["enc"].is_string() || !j.contains("mac") ||
        !j["mac"].is_string() || !unhex(j["enc"].get<std::string>(), k.enc.data(), 32) ||
        !unhex(j["mac"].get<std::string>(), k.mac.data(), 32))
        return fail("a repository key is malformed");
    return k;
}

ChunkId IdHasher::operator()(const void *data, std::size_t n) const {
    if (!m_keyed) return sha256_id(data, n);
    ChunkId id{};
    unsigned int len = 0;
    HMAC(EVP_sha256(), m_mac.data(), static_cast<int>(m_mac.size()),
         static_cast<const unsigned char *>(data), n, id.data(), &len);
    return id;
}

std::string IdHasher::key_hex() const {
    return m_keyed ? str::hex(m_mac.data(), m_mac.size()) : std::string();
}

Result<IdHasher> IdHasher::from_hex(const std::string &hex) {
    if (hex.empty()) return IdHasher();
    std::array<std::uint8_t, 32> k{};
    if (!unhex(hex, k.data(), k.size())) return fail("a malformed id key");
    return IdHasher(k);
}

void Sealer::seal_append(std::string_view plain, std::string_view aad, std::string &out) const {
    std::uint8_t nonce[12];
    random_bytes(nonce, sizeof nonce);
    std::size_t at = out.size();
    out.resize(at + overhead + plain.size());
    auto *p = reinterpret_cast<unsigned char *>(out.data() + at);
    std::memcpy(p, nonce, 12);
    CipherCtx ctx;
    int len = 0;
    bool ok = ctx.c && EVP_EncryptInit_ex(ctx.c, EVP_aes_256_gcm(), nullptr, m_key.data(), nonce);
    ok = ok && EVP_EncryptUpdate(ctx.c, nullptr, &len,
                                 reinterpret_cast<const unsigned char *>(aad.data()),
                                 static_cast<int>(aad.size()));
    ok = ok && EVP_EncryptUpdate(ctx.c, p + 12, &len,
                                 reinterpret_cast<const unsigned char *>(plain.data()),
                                 static_cast<int>(plain.size()));
    ok = ok && EVP_EncryptFinal_ex(ctx.c, p + 12 + len, &len);
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_GET_TAG, 16, p + 12 + plain.size());
    if (!ok) throw std::runtime_error("AES-256-GCM encryption failed"); // only on OOM
}

Result<std::string> Sealer::open(std::string_view sealed, std::string_view aad) const {
    if (sealed.size() < overhead) return fail("too short to be encrypted data");
    auto *p = reinterpret_cast<const unsigned char *>(sealed.data());
    std::size_t n = sealed.size() - overhead;
    std::string out(n, '\0');
    CipherCtx ctx;
    int len = 0;
    bool ok = ctx.c && EVP_DecryptInit_ex(ctx.c, EVP_aes_256_gcm(), nullptr, m_key.data(), p);
    ok = ok && EVP_DecryptUpdate(ctx.c, nullptr, &len,
                                 reinterpret_cast<const unsigned char *>(aad.data()),
                                 static_cast<int>(aad.size()));
    ok = ok && EVP_DecryptUpdate(ctx.c, reinterpret_cast<unsigned char *>(out.data()), &len, p + 12,
                                 static_cast<int>(n));
    ok = ok && EVP_CIPHER_CTX_ctrl(ctx.c, EVP_CTRL_GCM_SET_TAG, 16,
                                   const_cast<unsigned char *>(p + 12 + n));
    ok = ok &&
         EVP_DecryptFinal_ex(ctx.c, reinterpret_cast<unsigned char *>(out.data()) + len, &len) == 1;
    if (!ok) {
        OPENSSL_cleanse(out.data(), out.size());
        return fail("authentication failed (damaged, or not this repository's)");
    }
    return out;
}

Result<std::string> wrap_master_key(const MasterKey &k, const std::string &passphrase) {
    std::uint8_t salt[32];
    random_bytes(salt, sizeof salt);
    auto kek = scrypt(passphrase, salt, sizeof salt, k_scrypt_n, k_scrypt_r, k_scrypt_p);
    if (!kek) return tl::unexpected(kek.error());
    std::string plain = k.to_json();
    std::string sealed = Sealer(*kek).seal(plain, "berth master key");
    OPENSSL_cleanse(plain.data(), plain.size());
    OPENSSL_cleanse(kek->data(), kek->size());
    return nlohmann::json{{"kdf", "scrypt"},
                          {"N", k_scrypt_n},
                          {"r", k_scrypt_r},
                          {"p", k_scrypt_p},
                          {"salt", str::hex(salt, sizeof salt)},
                          {"data", str::hex(reinterpret_cast<const unsigned char *>(sealed.data()),
                                            sealed.size())}}
               .dump(2) +
           "\n";
}

Result<MasterKey> unwrap_master_key(const std::string &entry_json, const std::string &passphrase) {
    auto j = nlohmann::json::parse(entry_json, nullptr, false);
    auto bad = [] { return fail("a repository key entry is damaged"); };
    if (!j.is_object() || j.value("kdf", "") != "scrypt") return bad();
    for (const char *k : {"N", "r", "p"})
        if (!j.contains(k) || !j[k].is_number_unsigned()) return bad();
    auto n = j["N"].get<std::uint64_t>(), r = j["r"].get<std::uint64_t>(),
         p = j["p"].get<std::uint64_t>();
    // Bounded: a crafted entry must not make berth spend minutes or gigabytes.
    if (n < 1024 || n > (1u << 20) || (n & (n - 1)) || r < 1 || r > 32 || p < 1 || p > 16)
        return bad();
    std::string salt_hex = j.value("salt", ""), data_hex = j.value("data", "");
    std::uint8_t salt[32];
    if (!unhex(salt_hex, salt, sizeof salt) || data_hex.size() % 2 || data_hex.size() > 4096)
        return bad();
    std::string sealed(data_hex.size() / 2, '\0');
    if (!unhex(data_hex, reinterpret_cast<std::uint8_t *>(sealed.data()), sealed.size()))
        return bad();
    auto kek = scrypt(passphrase, salt, sizeof salt, n, r, p);
    if (!kek) return tl::unexpected(kek.error());
    auto plain = Sealer(*kek).open(sealed, "berth master key");
    OPENSSL_cleanse(kek->data(), kek->size());
    if (!plain) return fail("wrong passphrase");
    auto k = MasterKey::from_json(*plain);
    OPENSSL_cleanse(plain->data(), plain->size());
    return k;
}

} // namespace berth::store
