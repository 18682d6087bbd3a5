// A minimal WebSocket client (RFC 6455) for the machine's own loopback services: Jupyter's
// kernel channels. Text messages only, no extensions, one connection per object.
//
// Hand-written rather than a library: it runs in the static agent, and Debian 12's WebSocket
// libraries ship no static archive (libwslay-dev) or pull in a server framework
// (libwebsockets, websocketpp with asio).
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace berth::net {

// Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + the RFC's GUID)).
std::string websocket_accept(const std::string &key);

// One frame as it arrives from a server. parse_ws_frame returns the bytes it used (0: more
// are needed) or fails on what a server must not send (a masked frame, a reserved bit, a
// frame larger than `limit`).
struct WsFrame {
    bool fin = false;
    std::uint8_t opcode = 0;
    std::string payload;
};
Result<std::size_t> parse_ws_frame(std::string_view in, WsFrame &out, std::size_t limit);
// A client frame: masked with `mask` (4 bytes), FIN set.
std::string make_ws_frame(std::uint8_t opcode, std::string_view payload, const std::uint8_t *mask);

class WebSocket {
public:
    // Connects to ws://host:port/path (host an IPv4 address) with extra header lines
    // ("Authorization: token X"); fails unless the server switches protocols with the right
    // Sec-WebSocket-Accept within timeout.
    static Result<WebSocket> open(const std::string &host, int port, const std::string &path,
                                  const std::vector<std::string> &headers,
                                  std::chrono::milliseconds timeout);
    WebSocket(WebSocket &&o) noexcept;
    WebSocket &operator=(WebSocket &&o) noexcept;
    WebSocket(const WebSocket &) = delete;
    WebSocket &operator=(const WebSocket &) = delete;
    ~WebSocket();

    Result<> send_text(std::string_view text, std::chrono::milliseconds timeout);
    // The text messages that arrive within `wait` (none: an empty list; 0 ms only reads what
    // is there). Fails once the server closed the connection or broke the protocol.
    Result<std::vector<std::string>> receive(std::chrono::milliseconds wait);

private:
    explicit WebSocket(int fd) : m_fd(fd) {}
    int m_fd = -1;
    std::string m_in;      // bytes read, not yet a whole frame
    std::string m_message; // a fragmented message so far
};

} // namespace berth::net
