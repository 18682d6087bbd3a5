#include "util/websocket.hpp"

#include "util/net.hpp"
#include "util/strings.hpp"

#include <cerrno>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

namespace berth::net {

namespace {

constexpr std::size_t frame_limit = 16u << 20; // a kernel_info_reply is a few kB

std::string base64(const unsigned char *data, std::size_t n) {
    std::string out(4 * ((n + 2) / 3) + 1, '\0');
    int len =
        EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()), data, static_cast<int>(n));
    out.resize(static_cast<std::size_t>(len));
    return out;
}

void random_bytes(std::uint8_t *b, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::getrandom(b + got, n - got, 0);
        if (r > 0) got += static_cast<std::size_t>(r);
    }
}

long left_ms(std::chrono::steady_clock::time_point deadline) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline -
                                                                 std::chrono::steady_clock::now())
        .count();
}

// Sends all of `data` before the deadline.
bool send_all(int fd, std::string_view data, std::chrono::steady_clock::time_point deadline) {
    std::size_t off = 0;
    while (off < data.size()) {
        long left = left_ms(deadline);
        if (left <= 0) return false;
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, static_cast<int>(left)) != 1) return false;
        ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return false;
        off += static_cast<std::size_t>(n);
    }
    return true;
}

} // namespace

std::string websocket_accept(const std::string &key) {
    std::string s = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(s.data(), s.size(), md, &len, EVP_sha1(), nullptr);
    return base64(md, len);
}

Result<std::size_t> parse_ws_frame(std::string_view in, WsFrame &out, std::size_t limit) {
    if (in.size() < 2) return std::size_t{0};
    auto b0 = static_cast<std::uint8_t>(in[0]), b1 = static_cast<std::uint8_t>(in[1]);
    if (b0 & 0x70) return fail(ErrorKind::malformed, "a WebSocket frame with a reserved bit set");
    if (b1 & 0x80) return fail(ErrorKind::malformed, "a masked WebSocket frame from the server");
    std::size_t head = 2;
    std::uint64_t len = b1 & 0x7f;
    if (len == 126 || len == 127) {
        std::size_t n = len == 126 ? 2 : 8;
        if (in.size() < 2 + n) return std::size_t{0};
        len = 0;
        for (std::size_t i = 0; i < n; ++i)
            len = (len << 8) | static_cast<std::uint8_t>(in[2 + i]);
        head += n;
    }
    if (len > limit)
        return fail(ErrorKind::malformed, "a WebSocket frame of " + std::to_string(len) +
                                              " bytes (at most " + std::to_string(limit) + ")");
    if (in.size() - head < len) return std::size_t{0};
    out.fin = (b0 & 0x80) != 0;
    out.opcode = b0 & 0x0f;
    out.payload.assign(in.substr(head, static_cast<std::size_t>(len)));
    return head + static_cast<std::size_t>(len);
}

std::string make_ws_frame(std::uint8_t opcode, std::string_view payload, const std::uint8_t *mask) {
    std::string f;
    f.push_back(static_cast<char>(0x80 | (opcode & 0x0f)));
    std::size_t n = payload.size();
    if (n < 126) {
        f.push_back(static_cast<char>(0x80 | n));
    } else if (n <= 0xffff) {
        f.push_back(static_cast<char>(0x80 | 126));
        f.push_back(static_cast<char>(n >> 8));
        f.push_back(static_cast<char>(n & 0xff));
    } else {
        f.push_back(static_cast<char>(0x80 | 127));
        for (int i = 7; i >= 0; --i)
            f.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> (8 * i)) & 0xff));
    }
    f.append(reinterpret_cast<const char *>(mask), 4);
    for (std::size_t i = 0; i < n; ++i)
        f.push_back(static_cast<char>(payload[i] ^ static_cast<char>(mask[i % 4])));
    return f;
}

Result<WebSocket> WebSocket::open(const std::string &host, int port, const std::string &path,
                                  const std::vector<std::string> &headers,
                                  std::chrono::milliseconds timeout) {
    for (const auto &h : headers)
        if (h.find_first_of("\r\n") != std::string::npos) return fail("bad HTTP header line");
    if (path.empty() || path[0] != '/' || path.find_first_of(" \r\n") != std::string::npos)
        return fail("bad WebSocket path");
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string where = host + ":" + std::to_string(port);
    int err = 0;
    int fd = connect_tcp(host, port, timeout, &err);
    if (fd < 0) return fail_errno(where, err);
    WebSocket ws(fd);
    std::uint8_t raw[16];
    random_bytes(raw, sizeof raw);
    std::string key = base64(raw, sizeof raw);
    std::string req = "GET " + path + " HTTP/1.1\r\nHost: " + where +
                      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                      "\r\nSec-WebSocket-Version: 13\r\n";
    for (const auto &h : headers)
        req += h + "\r\n";
    req += "\r\n";
    if (!send_all(fd, req, deadline)) return fail("no WebSocket handshake with " + where);
    std::string in;
    std::size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        long left = left_ms(deadline);
        pollfd p{fd, POLLIN, 0};
        if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) != 1)
            return fail("no WebSocket answer from " + where + " in time");
        char buf[4096];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return fail(where + " closed the connection during the WebSocket handshake");
        in.append(buf, static_cast<std::size_t>(n));
        if (in.size() > 65536) return fail("an oversized WebSocket handshake from " + where);
    }
    auto lines = str::split(in.substr(0, end), '\n');
    if (lines.empty() || lines[0].rfind("HTTP/1.1 101", 0) != 0)
        return fail("no WebSocket from " + where + ": " +
                    str::trim(lines.empty() ? std::string() : lines[0]));
    std::string want = websocket_accept(key);
    bool accepted = false;
    for (const auto &l : lines) {
        auto colon = l.find(':');
        if (colon == std::string::npos) continue;
        std::string name = str::trim(l.substr(0, colon));
        for (auto &c : name)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (name == "sec-websocket-accept" && str::trim(l.substr(colon + 1)) == want)
            accepted = true;
    }
    if (!accepted) return fail("a wrong Sec-WebSocket-Accept from " + where);
    ws.m_in = in.substr(end + 4);
    return ws;
}

WebSocket::WebSocket(WebSocket &&o) noexcept
    : m_fd(o.m_fd), m_in(std::move(o.m_in)), m_message(std::move(o.m_message)) {
    o.m_fd = -1;
}

WebSocket &WebSocket::operator=(WebSocket &&o) noexcept {
    if (this != &o) {
        if (m_fd >= 0) ::close(m_fd);
        m_fd = o.m_fd;
        o.m_fd = -1;
        m_in = std::move(o.m_in);
        m_message = std::move(o.m_message);
    }
    return *this;
}

WebSocket::~WebSocket() {
    if (m_fd >= 0) ::close(m_fd);
}

Result<> WebSocket::send_text(std::string_view text, std::chrono::milliseconds timeout) {
    if (m_fd < 0) return fail("the WebSocket is closed");
    std::uint8_t mask[4];
    random_bytes(mask, sizeof mask);
    if (!send_all(m_fd, make_ws_frame(0x1, text, mask), std::chrono::steady_clock::now() + timeout))
        return fail("could not send on the WebSocket");
    return {};
}

Result<std::vector<std::string>> WebSocket::receive(std::chrono::milliseconds wait) {
    if (m_fd < 0) return fail("the WebSocket is closed");
    std::vector<std::string> out;
    auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
        // Whole frames first: they may have come with the handshake or an earlier read.
        for (;;) {
            WsFrame f;
            auto used = parse_ws_frame(m_in, f, frame_limit);
            if (!used) return tl::unexpected(used.error());
            if (*used == 0) break;
            m_in.erase(0, *used);
            if (f.opcode == 0x8) return fail("the server closed the WebSocket");
            if (f.opcode == 0x9) { // ping: answer, as the RFC asks
                std::uint8_t mask[4];
                random_bytes(mask, sizeof mask);
                (void)send_all(m_fd, make_ws_frame(0xA, f.payload, mask),
                               std::chrono::steady_clock::now() + std::chrono::seconds(1));
                continue;
            }
            if (f.opcode == 0xA) continue; // pong
            if (f.opcode == 0x1 || f.opcode == 0x2)
                m_message = f.payload;
            else if (f.opcode == 0x0)
                m_message += f.payload;
            else
                return fail(ErrorKind::malformed, "a WebSocket frame with an unknown opcode");
            if (m_message.size() > frame_limit)
                return fail(ErrorKind::malformed, "an oversized WebSocket message");
            if (f.fin) {
                out.push_back(std::move(m_message));
                m_message.clear();
            }
        }
        if (!out.empty()) return out;
        long left = left_ms(deadline);
        pollfd p{m_fd, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(std::max(0L, left)));
        if (r < 0 && errno == EINTR) continue;
        if (r != 1) return out; // nothing more in time
        char buf[16384];
        ssize_t n = ::read(m_fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (n <= 0) return fail("the server closed the WebSocket");
        m_in.append(buf, static_cast<std::size_t>(n));
        if (m_in.size() > 2 * frame_limit) return fail("an oversized WebSocket message");
    }
}

} // namespace berth::net
