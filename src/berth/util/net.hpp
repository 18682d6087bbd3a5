// Loopback networking helpers: free ports, connect probes, a minimal HTTP GET.
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace berth::net {

// A non-blocking, close-on-exec TCP socket connected to host (an IPv4 address):port within
// timeout; -1 with errno in *err when it is not.
int connect_tcp(const std::string &host, int port, std::chrono::milliseconds timeout,
                int *err = nullptr);

// A port on 127.0.0.1 that was free a moment ago (bind to 0, read, close).
Result<int> free_loopback_port();

// Whether a TCP connection to host:port succeeds within timeout; errno of the failure in *err.
bool connectable(const std::string &host, int port, std::chrono::milliseconds timeout,
                 int *err = nullptr);

// Whether an SSH server answers at host:port: its "SSH-" banner arrives within timeout. A port
// that accepts and closes (a provider's proxy while the machine's sshd is not up yet) does not.
bool ssh_answers(const std::string &host, int port, std::chrono::milliseconds timeout,
                 int *err = nullptr);

// Waits (with backoff, up to `limit`) until ssh_answers; false when the time is up or `stop`
// says so (an interrupt). errno of the last failure in *err.
bool wait_ssh(const std::string &host, int port, std::chrono::milliseconds limit,
              int *err = nullptr, const std::function<bool()> &stop = {});

// GET http://host:port/path; returns the status code, or fails if nothing answers.
Result<int> http_status(const std::string &host, int port, const std::string &path,
                        std::chrono::milliseconds timeout);

struct HttpAnswer {
    int status = 0;
    std::string body;
};

// GET http://host:port/path with extra header lines ("Authorization: token X"), HTTP/1.0,
// reading at most `limit` bytes of answer; fails if nothing answers in time or the answer is
// not HTTP. For the machine's own loopback services (Jupyter's REST API).
Result<HttpAnswer> http_get(const std::string &host, int port, const std::string &path,
                            const std::vector<std::string> &headers,
                            std::chrono::milliseconds timeout, std::size_t limit = 4u << 20);

} // namespace berth::net
