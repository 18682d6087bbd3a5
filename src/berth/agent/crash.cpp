#include "agent/crash.hpp"

#include <csignal>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace berth {

void crash_point(std::string_view step) {
    static const char *spec = std::getenv("BERTH_CRASH_AT");
    if (!spec || !*spec) return;
    static const std::string s = spec;
    static const auto colon = s.find(':');
    static const std::string name = s.substr(0, colon);
    static const long nth = colon == std::string::npos ? 1 : std::atol(s.c_str() + colon + 1);
    static long seen = 0;
    if (step != name) return;
    if (++seen == nth) ::kill(::getpid(), SIGKILL);
}

} // namespace berth
