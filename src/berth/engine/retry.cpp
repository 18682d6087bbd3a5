#include "engine/retry.hpp"

#include <random>
#include <thread>

namespace berth {

bool retryable_status(long s) {
    return s == 429 || s == 502 || s == 503 || s == 504;
}

Result<http::Response> send_with_retry(const http::Request &r, const RetryPolicy &p,
                                       const std::function<void(const std::string &)> &note) {
    static thread_local std::mt19937 rng{std::random_device{}()};
    auto delay = p.first;
    Result<http::Response> last = fail("no attempt made");
    for (int i = 0; i < p.attempts; ++i) {
        last = http::send(r);
        // Transport failures (code 1) and overload answers are worth another try; nothing else.
        bool again = last ? retryable_status(last->status) : last.error().code == 1;
        if (!again || i + 1 == p.attempts) return last;
        std::uniform_real_distribution<double> jitter(0.5, 1.5);
        auto wait = std::chrono::milliseconds(
            static_cast<long>(static_cast<double>(delay.count()) * jitter(rng)));
        if (note)
            note((last ? "HTTP " + std::to_string(last->status) : last.error().what) +
                 "; retrying in " + std::to_string(wait.count()) + " ms");
        std::this_thread::sleep_for(wait);
        delay = std::min(p.max, std::chrono::milliseconds(static_cast<long>(
                                    static_cast<double>(delay.count()) * p.factor)));
    }
    return last;
}

} // namespace berth
