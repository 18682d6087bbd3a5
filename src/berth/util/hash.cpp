#include "util/hash.hpp"

#include "util/strings.hpp"

#include <cerrno>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdexcept>
#include <sys/random.h>
#include <unistd.h>
#include <vector>

namespace berth {

struct Sha256::Impl {
    EVP_MD_CTX *ctx = nullptr;
};

Sha256::Sha256() : m_impl(std::make_unique<Impl>()) {
    m_impl->ctx = EVP_MD_CTX_new();
    if (!m_impl->ctx || EVP_DigestInit_ex(m_impl->ctx, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
}

Sha256::~Sha256() {
    EVP_MD_CTX_free(m_impl->ctx);
}

void Sha256::update(const void *data, std::size_t n) {
    EVP_DigestUpdate(m_impl->ctx, data, n);
}

std::string Sha256::hex_digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(m_impl->ctx, md, &len);
    return str::hex(md, len);
}

std::string sha256_hex(std::string_view data) {
    Sha256 h;
    h.update(data);
    return h.hex_digest();
}

Result<std::string> sha256_file(const std::filesystem::path &p) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail_errno(p.string(), errno);
    Sha256 h;
    static thread_local char buf[1 << 20];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            return fail_errno(p.string(), e);
        }
        if (n == 0) break;
        h.update(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return h.hex_digest();
}

std::string random_hex(std::size_t bytes) {
    std::vector<unsigned char> b(bytes);
    std::size_t got = 0;
    while (got < bytes) {
        ssize_t n = ::getrandom(b.data() + got, bytes - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) throw std::runtime_error("getrandom failed");
        got += static_cast<std::size_t>(n);
    }
    return str::hex(b.data(), b.size());
}

} // namespace berth
