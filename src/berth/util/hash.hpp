// SHA-256 through OpenSSL's EVP interface (uses the CPU's SHA extensions when present).
#pragma once

#include "util/result.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace berth {

class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(const Sha256 &) = delete;
    Sha256 &operator=(const Sha256 &) = delete;

    void update(const void *data, std::size_t n);
    void update(std::string_view s) { update(s.data(), s.size()); }
    // Lowercase hex digest; the object may not be updated afterwards.
    std::string hex_digest();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

std::string sha256_hex(std::string_view data);

// `bytes` random bytes from the kernel (getrandom), as hex: tokens, ids, keys.
std::string random_hex(std::size_t bytes);

// Hash of a file's content; fails with the path and errno text.
Result<std::string> sha256_file(const std::filesystem::path &p);

} // namespace berth
