#include "util/net.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

namespace berth::net {

int connect_tcp(const std::string &host, int port, std::chrono::milliseconds timeout, int *err) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    int rc = ::connect(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    if (rc != 0 && errno == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
            int so = 0;
            socklen_t len = sizeof so;
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
            rc = so == 0 ? 0 : -1;
            errno = so;
        } else {
            errno = ETIMEDOUT;
        }
    }
    if (rc != 0) {
        if (err) *err = errno;
        ::close(fd);
        return -1;
    }
    return fd;
}

Result<int> free_loopback_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail_errno("socket", errno);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len) != 0) {
        int e = errno;
        ::close(fd);
        return fail_errno("no free port on 127.0.0.1", e, "close some listening programs");
    }
    ::close(fd);
    return ntohs(a.sin_port);
}

bool connectable(const std::string &host, int port, std::chrono::milliseconds timeout, int *err) {
    int fd = connect_tcp(host, port, timeout, err);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

bool ssh_answers(const std::string &host, int port, std::chrono::milliseconds timeout, int *err) {
    int fd = connect_tcp(host, port, timeout, err);
    if (fd < 0) return false;
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[4] = {};
    std::size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = ::read(fd, buf + got, sizeof buf - got);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (got == sizeof buf && std::memcmp(buf, "SSH-", 4) == 0) return true;
    if (err) *err = got == 0 ? ECONNRESET : EPROTO;
    return false;
}

bool wait_ssh(const std::string &host, int port, std::chrono::milliseconds limit, int *err,
              const std::function<bool()> &stop) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    auto delay = std::chrono::milliseconds(100);
    while (!ssh_answers(host, port, std::chrono::milliseconds(1000), err)) {
        if ((stop && stop()) || std::chrono::steady_clock::now() + delay > deadline) return false;
        std::this_thread::sleep_for(delay);
        delay = std::min(delay * 2, std::chrono::milliseconds(2000));
    }
    return true;
}

Result<int> http_status(const std::string &host, int port, const std::string &path,
                        std::chrono::milliseconds timeout) {
    int err = 0;
    int fd = connect_tcp(host, port, timeout, &err);
    if (fd < 0) return fail_errno(host + ":" + std::to_string(port), err);
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string req =
        "GET " + path + " HTTP/1.0\r\nHost: " + host + ":" + std::to_string(port) + "\r\n\r\n";
    (void)!::write(fd, req.data(), req.size());
    char buf[64] = {};
    ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n < 12 || std::strncmp(buf, "HTTP/1.", 7) != 0)
        return fail("no HTTP answer from port " + std::to_string(port));
    return std::atoi(buf + 9);
}

Result<HttpAnswer> http_get(const std::string &host, int port, const std::string &path,
                            const std::vector<std::string> &headers,
                            std::chrono::milliseconds timeout, std::size_t limit) {
    for (const auto &h : headers)
        if (h.find_first_of("\r\n") != std::string::npos) return fail("bad HTTP header line");
    if (path.find_first_of(" \r\n") != std::string::npos) return fail("bad HTTP path");
    int err = 0;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int fd = connect_tcp(host, port, timeout, &err);
    if (fd < 0) return fail_errno(host + ":" + std::to_string(port), err);
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host + ":" + std::to_string(port) +
                      "\r\nAccept: application/json\r\n";
    for (const auto &h : headers)
        req += h + "\r\n";
    req += "\r\n";
    std::size_t off = 0;
    std::string in;
    bool ok = true;
    while (ok) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        deadline - std::chrono::steady_clock::now())
                        .count();
        if (left <= 0) {
            ok = false;
            break;
        }
        pollfd p{fd, static_cast<short>(off < req.size() ? POLLOUT : POLLIN), 0};
        if (::poll(&p, 1, static_cast<int>(left)) != 1) {
            ok = false;
            break;
        }
        if (off < req.size()) {
            ssize_t n = ::send(fd, req.data() + off, req.size() - off, MSG_NOSIGNAL);
            if (n <= 0) {
                ok = false;
                break;
            }
            off += static_cast<std::size_t>(n);
            continue;
        }
        char buf[16384];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            ok = false;
            break;
        }
        in.append(buf, static_cast<std::size_t>(n));
        if (in.size() > limit) {
            ::close(fd);
            return fail("the answer from port " + std::to_string(port) + " is too large");
        }
    }
    ::close(fd);
    if (!ok) return fail("no complete HTTP answer from port " + std::to_string(port) + " in time");
    if (in.size() < 12 || in.compare(0, 7, "HTTP/1.") != 0)
        return fail("no HTTP answer from port " + std::to_string(port));
    HttpAnswer a;
    a.status = std::atoi(in.c_str() + 9);
    auto sep = in.find("\r\n\r\n");
    if (sep != std::string::npos) a.body = in.substr(sep + 4);
    return a;
}

} // namespace berth::net
