// Retry policy for provider APIs, owned by the engine: 429, 502, 503, 504 and transport
// failures are retried with exponential backoff and jitter; anything else is final.
#pragma once

#include "util/backoff.hpp"
#include "util/http.hpp"

#include <functional>
#include <string>

namespace berth {

using RetryPolicy = BackoffPolicy;

bool retryable_status(long status);

Result<http::Response> send_with_retry(const http::Request &r, const RetryPolicy &p = {},
                                       const std::function<void(const std::string &)> &note = {});

} // namespace berth
