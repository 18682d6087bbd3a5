#include "engine/retry.hpp"

#include <thread>

namespace berth {

bool retryable_status(long s) {
    return s == 429 || s == 502 || s == 503 || s == 504;
}

Result<http::Response> send_with_retry(const http::Request &r, const RetryPolicy &p,
                                       const std::function<void(const std::string &)> &note) {
    Backoff backoff(p);
    Result<http::Response> last = fail("no attempt made");
    for (int i = 0; i < p.attempts; ++i) {
        last = http::send(r);
        // Transport failures (code 1) and overload answers are worth another try; nothing else.
        bool again = last ? retryable_status(last->status) : last.error().code == 1;
        if (!again || i + 1 == p.attempts) return last;
        auto wait = backoff.next();
        if (note)
            note((last ? "HTTP " + std::to_string(last->status) : last.error().what) +
                 "; retrying in " + std::to_string(wait.count()) + " ms");
        std::this_thread::sleep_for(wait);
    }
    return last;
}

} // namespace berth
