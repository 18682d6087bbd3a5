#include "forward.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace replica {

Forwarder::Forwarder() {
    m_listen = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    ::setsockopt(m_listen, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(m_listen, reinterpret_cast<sockaddr *>(&a), sizeof a) == 0 &&
        ::listen(m_listen, 64) == 0) {
        socklen_t len = sizeof a;
        ::getsockname(m_listen, reinterpret_cast<sockaddr *>(&a), &len);
        m_port = ntohs(a.sin_port);
    }
    m_thread = std::thread([this] { accept_loop(); });
}

Forwarder::~Forwarder() {
    m_quit = true;
    ::shutdown(m_listen, SHUT_RDWR);
    if (m_thread.joinable()) m_thread.join();
    ::close(m_listen);
    // Connections notice m_quit within their poll timeout.
    for (int i = 0; i < 100 && m_live > 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

void Forwarder::accept_loop() {
    while (!m_quit) {
        pollfd p{m_listen, POLLIN, 0};
        if (::poll(&p, 1, 200) <= 0) continue;
        int c = ::accept4(m_listen, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) continue;
        if (m_target == 0) { // the machine is down: connection refused, as Vast's proxy does
            ::close(c);
            continue;
        }
        ++m_live;
        std::thread([this, c] {
            pump(c);
            --m_live;
        }).detach();
    }
}

void Forwarder::pump(int client) {
    int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(m_target.load()));
    if (::connect(up, reinterpret_cast<sockaddr *>(&a), sizeof a) != 0) {
        ::close(up);
        ::close(client);
        return;
    }
    int one = 1;
    ::setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char buf[65536];
    bool open_in = true, open_out = true;
    while (!m_quit && (open_in || open_out)) {
        pollfd p[2] = {{client, static_cast<short>(open_in ? POLLIN : 0), 0},
                       {up, static_cast<short>(open_out ? POLLIN : 0), 0}};
        if (::poll(p, 2, 200) <= 0) continue;
        for (int side = 0; side < 2; ++side) {
            if (!(p[side].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int from = side == 0 ? client : up, to = side == 0 ? up : client;
            ssize_t n = ::read(from, buf, sizeof buf);
            if (n <= 0) {
                ::shutdown(to, SHUT_WR);
                (side == 0 ? open_in : open_out) = false;
                continue;
            }
            ssize_t done = 0;
            while (done < n) {
                ssize_t w = ::write(to, buf + done, static_cast<std::size_t>(n - done));
                if (w <= 0) {
                    open_in = open_out = false;
                    break;
                }
                done += w;
            }
            (side == 0 ? m_in : m_out) += static_cast<std::uint64_t>(done);
        }
    }
    ::close(up);
    ::close(client);
}

} // namespace replica
