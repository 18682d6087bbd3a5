#include "util/http_retry.hpp"

#include <thread>

namespace berth {

namespace {
std::chrono::milliseconds g_deadline{60000};
std::function<void(const std::string &)> g_note;
} // namespace

void set_retry_note(std::function<void(const std::string &)> note) {
    g_note = std::move(note);
}

void set_default_http_deadline(std::chrono::milliseconds d) {
    if (d.count() > 0) g_deadline = d;
}

std::chrono::milliseconds default_http_deadline() {
    return g_deadline;
}

bool retryable_status(long s) {
    return s == 429 || s == 502 || s == 503 || s == 504;
}

Result<http::Response> send_with_retry(const http::Request &r, RetryPolicy p,
                                       const std::function<void(const std::string &)> &note) {
    using clock = std::chrono::steady_clock;
    if (p.deadline == RetryPolicy{}.deadline) p.deadline = g_deadline;
    auto deadline = clock::now() + p.deadline;
    auto out_of_time = [&] {
        return fail(ErrorKind::timeout,
                    http::host_of(r.url) + " gave no complete answer within " +
                        std::to_string(p.deadline.count() / 1000) + " s",
                    "retry later; config `http.deadline_s` sets the deadline");
    };
    Backoff backoff(p);
    Result<http::Response> last = fail("no attempt made");
    for (int i = 0; i < p.attempts; ++i) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now());
        if (left.count() <= 0) return out_of_time();
        http::Request attempt = r;
        attempt.timeout = std::min(r.timeout, left);
        last = http::send(attempt);
        // Any 5xx of a read is retried too (it changes nothing); a write's 500 may mean done.
        bool read = r.method == "GET" || r.method == "HEAD";
        bool again = last ? retryable_status(last->status) || (read && last->status >= 500)
                          : transient(last.error());
        if (!again || i + 1 == p.attempts) break;
        auto wait = backoff.next();
        if (clock::now() + wait >= deadline) break;
        std::string what = http::host_of(r.url) + ": " +
                           (last ? "HTTP " + std::to_string(last->status) : last.error().what) +
                           "; retrying in " + std::to_string(wait.count()) + " ms";
        if (note)
            note(what);
        else if (g_note)
            g_note(what);
        std::this_thread::sleep_for(wait);
    }
    if (!last && last.error().kind == ErrorKind::timeout && clock::now() >= deadline)
        return out_of_time();
    return last;
}

Result<http::Response> send_once(const http::Request &r) {
    http::Request attempt = r;
    attempt.timeout = std::min(r.timeout, g_deadline);
    return http::send(attempt);
}

} // namespace berth
