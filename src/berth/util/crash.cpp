#include "util/crash.hpp"

#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <unistd.h>

namespace berth {

namespace {

struct Trigger {
    std::string name;
    long nth = 1;
    long seen = 0;
    bool active = false;

    explicit Trigger(const char *var) {
        const char *spec = std::getenv(var);
        if (!spec || !*spec) return;
        std::string s = spec;
        auto colon = s.find(':');
        name = s.substr(0, colon);
        if (colon != std::string::npos) nth = std::atol(s.c_str() + colon + 1);
        active = true;
    }
    bool hit(std::string_view step) { return active && step == name && ++seen == nth; }
};

void pause_here() {
    const char *file = std::getenv("BERTH_PAUSE_FILE");
    if (!file) return;
    std::string reached = std::string(file) + ".reached";
    int fd = ::open(reached.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) ::close(fd);
    while (::access(file, F_OK) == 0)
        ::usleep(10000);
}

} // namespace

void crash_point(std::string_view step) {
    static Trigger crash("BERTH_CRASH_AT");
    static Trigger pause("BERTH_PAUSE_AT");
    if (crash.hit(step)) ::kill(::getpid(), SIGKILL);
    if (pause.hit(step)) pause_here();
}

} // namespace berth
