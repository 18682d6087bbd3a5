// Retries for HTTP APIs, decided by the kind of failure: 429, 502, 503, 504 and network
// failures or timeouts are retried with exponential backoff and jitter; anything else is
// final. One overall deadline bounds every attempt and wait together, so a server that
// trickles one byte a second cannot hold berth longer than the deadline.
#pragma once

#include "util/backoff.hpp"
#include "util/http.hpp"

#include <chrono>
#include <functional>
#include <string>

namespace berth {

struct RetryPolicy : BackoffPolicy {
    std::chrono::milliseconds deadline{60000}; // all attempts and waits together
};

bool retryable_status(long status);

// The default deadline: config `http.deadline_s` (set once by the cli), else 60 s.
void set_default_http_deadline(std::chrono::milliseconds d);
std::chrono::milliseconds default_http_deadline();

// Where retries are told (the cli prints them on a terminal; none by default).
void set_retry_note(std::function<void(const std::string &)> note);

// Fails with kind timeout once the deadline has passed, naming the host and the deadline.
Result<http::Response> send_with_retry(const http::Request &r, RetryPolicy p = {},
                                       const std::function<void(const std::string &)> &note = {});

// One attempt, bounded by the same deadline (for calls that must not be repeated).
Result<http::Response> send_once(const http::Request &r);

} // namespace berth
