// HTTPS with libcurl: one request, no retries (the engine owns retry policy).
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace berth::http {

struct Response {
    long status = 0;
    std::string body;
    std::string content_type;
    std::vector<std::pair<std::string, std::string>> headers; // lower-case names; when asked
};

struct Request {
    std::string method = "GET";
    std::string url;
    std::vector<std::string> headers; // "Name: value"
    std::string body;
    std::chrono::milliseconds timeout{30000}; // the whole request, connect to last byte
    std::size_t max_body = 256u << 20;        // a larger answer is an error, not a bad_alloc
    // AWS Signature Version 4 by libcurl ("aws:amz:REGION:s3") with credentials "KEY:SECRET"
    // (a secret: never on a command line, never in an error).
    std::string aws_sigv4, aws_credentials;
    bool want_headers = false;
    std::string ca_file; // trust these CAs instead of the system's (AWS_CA_BUNDLE for S3)
};

// "host:port" of a URL, for messages.
inline std::string host_of(const std::string &url) {
    auto s = url.find("://");
    auto start = s == std::string::npos ? 0 : s + 3;
    auto end = url.find_first_of("/?", start);
    return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

// Fails only when no HTTP answer arrives (DNS, connect, TLS, timeout); the message names the
// host and curl's reason. Secrets in headers are never part of an error.
Result<Response> send(const Request &r);

} // namespace berth::http
