#include "util/interrupt.hpp"

#include <atomic>
#include <csignal>
#include <cstring>
#include <unistd.h>

namespace berth::interrupt {

namespace {

std::atomic<int> g_signal{0};
std::atomic<int> g_count{0};

void on_signal(int sig) {
    g_signal.store(sig);
    int n = ++g_count;
    if (n == 1) {
        const char msg[] = "\nberth: interrupted; finishing or undoing the current step "
                           "(interrupt twice more to quit now)\n";
        (void)!::write(2, msg, sizeof msg - 1);
    } else if (n >= 3) {
        const char msg[] = "\nberth: quitting now; the next berth command resolves what was "
                           "left\n";
        (void)!::write(2, msg, sizeof msg - 1);
        ::_exit(130);
    }
}

} // namespace

void install() {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; // no SA_RESTART: sleeps and waits return early
    ::sigaction(SIGINT, &sa, nullptr);
    ::sigaction(SIGTERM, &sa, nullptr);
}

bool requested() {
    return g_signal.load() != 0;
}

int signal_number() {
    return g_signal.load();
}

void reset() {
    g_signal.store(0);
    g_count.store(0);
}

} // namespace berth::interrupt
