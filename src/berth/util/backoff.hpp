// Exponential backoff with jitter: the waits between attempts, for every retry loop in berth.
#pragma once

#include <algorithm>
#include <chrono>
#include <random>

namespace berth {

struct BackoffPolicy {
    int attempts = 6;
    std::chrono::milliseconds first{300};
    double factor = 2.0;
    std::chrono::milliseconds max{8000};
};

class Backoff {
public:
    explicit Backoff(const BackoffPolicy &p = {}) : m_p(p), m_delay(p.first) {}
    // The wait before the next attempt (x0.5 to x1.5 jitter), then the base grows.
    std::chrono::milliseconds next() {
        static thread_local std::mt19937 rng{std::random_device{}()};
        std::uniform_real_distribution<double> jitter(0.5, 1.5);
        auto wait = std::chrono::milliseconds(
            static_cast<long>(static_cast<double>(m_delay.count()) * jitter(rng)));
        m_delay = std::min(m_p.max, std::chrono::milliseconds(static_cast<long>(
                                        static_cast<double>(m_delay.count()) * m_p.factor)));
        return wait;
    }
    int attempts() const { return m_p.attempts; }

private:
    BackoffPolicy m_p;
    std::chrono::milliseconds m_delay;
};

} // namespace berth
