#include "agent/idle.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace berth::idle {

Result<long> parse_duration(const std::string &text) {
    auto bad = [&] {
        return fail(ErrorKind::user, "'" + text.substr(0, 40) + "' is not a duration",
                    "write it like 45m, 2h, 90s, 1h30m, or off", 2);
    };
    if (text == "off" || text == "0" || text == "never") return 0L;
    if (text.empty() || text.size() > 32) return bad();
    double total = 0;
    std::size_t i = 0;
    bool any = false;
    while (i < text.size()) {
        std::size_t j = i;
        while (j < text.size() &&
               (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '.'))
            ++j;
        if (j == i || j >= text.size()) return bad();
        double n = 0;
        try {
            n = std::stod(text.substr(i, j - i));
        } catch (...) {
            return bad();
        }
        double unit = 0;
        switch (text[j]) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return bad();
        }
        total += n * unit;
        any = true;
        i = j + 1;
    }
    if (!any || !std::isfinite(total) || total > 366.0 * 86400) return bad();
    long s = std::lround(total);
    if (s <= 0) return bad();
    return s;
}

std::string format_duration(long s) {
    if (s <= 0) return "off";
    char buf[48];
    long h = s / 3600, m = (s % 3600) / 60, sec = s % 60;
    if (h && m)
        std::snprintf(buf, sizeof buf, "%ldh%ldm", h, m);
    else if (h && !sec)
        std::snprintf(buf, sizeof buf, "%ldh", h);
    else if (h)
        std::snprintf(buf, sizeof buf, "%ldh%ldm%lds", h, m, sec);
    else if (m && sec)
        std::snprintf(buf, sizeof buf, "%ldm%lds", m, sec);
    else if (m)
        std::snprintf(buf, sizeof buf, "%ldm", m);
    else
        std::snprintf(buf, sizeof buf, "%lds", sec);
    return buf;
}

const char *level_name(Level l) {
    switch (l) {
    case Level::quiet:
        return "quiet";
    case Level::busy:
        return "busy";
    case Level::absent:
        return "absent";
    case Level::unreadable:
        return "unreadable";
    }
    return "?";
}

Verdict decide(const Policy &policy, Clock &clock, const std::vector<Reading> &readings,
               const Hold &hold, double now) {
    Verdict v;
    if (clock.last_busy == 0) clock.last_busy = now; // the clock starts when watching starts
    for (const auto &r : readings) {
        double at = r.level == Level::busy || r.level == Level::unreadable ? now
                    : r.level == Level::quiet                              ? r.last_active
                                                                           : 0;
        at = std::min(at, now); // a clock ahead of ours never makes the future busy
        if (r.level == Level::busy || r.level == Level::unreadable) v.busy = true;
        if (at > 0 && at >= clock.last_busy) {
            clock.last_busy = at;
            clock.busy_by = r.signal;
        }
    }
    if (hold.in_force(now)) {
        v.busy = true;
        clock.last_busy = now;
        clock.busy_by = "hold";
    }
    v.idle_for = std::max(0.0, now - clock.last_busy);
    double idle_at = policy.idle_seconds > 0 ? clock.last_busy + policy.idle_seconds : 0;
    double hard = policy.deadline > 0 ? policy.deadline : 0;
    if (idle_at > 0 && (hard == 0 || idle_at < hard)) {
        v.stops_at = idle_at;
        v.idle_stop = true;
    } else {
        v.stops_at = hard;
    }
    if (v.stops_at == 0) return v;
    if (hard > 0 && now >= hard) { // the hard limit, whatever the idle clock (or a save) says
        v.stops_at = hard;
        v.idle_stop = false;
    }
    if (now >= v.stops_at) {
        v.action = Action::stop;
        if (v.idle_stop) {
            v.why = idle_reason(policy.idle_seconds, readings);
        } else {
            v.why = "max-hours reached (the hard limit set at up)";
        }
        return v;
    }
    long window = policy.warn_seconds;
    if (v.idle_stop) window = std::min<long>(window, policy.idle_seconds / 2);
    if (now >= v.stops_at - static_cast<double>(window) && clock.warned_for != v.stops_at) {
        // One warning per stop time: activity moves the stop time, and a new quiet stretch
        // warns again.
        clock.warned_for = v.stops_at;
        v.action = Action::warn;
        long left = std::lround(v.stops_at - now);
        v.why = "berth: this machine stops in " + format_duration(std::max(1L, left)) +
                (v.idle_stop ? " (idle " + format_duration(policy.idle_seconds) +
                                   "); any activity, or `berth hold`, keeps it up"
                             : " (max-hours, the hard limit)");
    }
    return v;
}

std::string idle_reason(long idle_seconds, const std::vector<Reading> &readings) {
    std::vector<std::string> quiet, absent;
    for (const auto &r : readings) {
        if (r.level == Level::quiet) quiet.push_back(r.signal);
        if (r.level == Level::absent) absent.push_back(r.signal);
    }
    std::string s = "idle " + format_duration(idle_seconds) + ": no ";
    for (std::size_t i = 0; i < quiet.size(); ++i) {
        if (i) s += i + 1 == quiet.size() ? " or " : ", ";
        s += quiet[i];
    }
    if (quiet.empty()) s += "signal's";
    s += " activity";
    if (!absent.empty()) {
        s += " (";
        for (std::size_t i = 0; i < absent.size(); ++i)
            s += (i ? ", " : "") + absent[i];
        s += ": absent)";
    }
    return s;
}

} // namespace berth::idle
