// HTTPS with libcurl: one request, no retries (the engine owns retry policy).
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace berth::http {

struct Response {
    long status = 0;
    std::string body;
    std::string content_type;
};

struct Request {
    std::string method = "GET";
    std::string url;
    std::vector<std::string> headers; // "Name: value"
    std::string body;
    std::chrono::milliseconds timeout{30000};
};

// Fails only when no HTTP answer arrives (DNS, connect, TLS, timeout); the message names the
// host and curl's reason. Secrets in headers are never part of an error.
Result<Response> send(const Request &r);

} // namespace berth::http
