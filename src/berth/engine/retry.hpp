// Retry policy for provider APIs, owned by the engine: 429, 502, 503, 504 and transport
// failures are retried with exponential backoff and jitter; anything else is final.
#pragma once

#include "util/http.hpp"

#include <functional>
#include <string>

namespace berth {

struct RetryPolicy {
    int attempts = 6;
    std::chrono::milliseconds first{300};
    double factor = 2.0;
    std::chrono::milliseconds max{8000};
};

bool retryable_status(long status);

Result<http::Response> send_with_retry(const http::Request &r, const RetryPolicy &p = {},
                                       const std::function<void(const std::string &)> &note = {});

} // namespace berth
