#include "util/term.hpp"

#include "util/strings.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

namespace berth::term {

bool color_enabled(int fd) {
    const char *nc = std::getenv("NO_COLOR");
    if (nc && *nc) return false;
    const char *t = std::getenv("TERM");
    if (t && std::strcmp(t, "dumb") == 0) return false;
    return ::isatty(fd) == 1;
}

std::string paint(std::string_view s, Color c, int fd) {
    if (c == Color::none || !color_enabled(fd)) return std::string(s);
    const char *code = "";
    switch (c) {
    case Color::red:
        code = "31";
        break;
    case Color::green:
        code = "32";
        break;
    case Color::yellow:
        code = "33";
        break;
    case Color::blue:
        code = "34";
        break;
    case Color::bold:
        code = "1";
        break;
    case Color::dim:
        code = "2";
        break;
    case Color::none:
        break;
    }
    return std::string("\x1b[") + code + "m" + std::string(s) + "\x1b[0m";
}

Progress::Progress(std::string label, std::uint64_t total)
    : m_label(std::move(label)), m_total(total), m_enabled(::isatty(2) == 1),
      m_start(std::chrono::steady_clock::now()), m_last(m_start) {}

Progress::~Progress() {
    done();
}

void Progress::add(std::uint64_t bytes) {
    m_done += bytes;
    draw(false);
}

void Progress::draw(bool force) {
    if (!m_enabled) return;
    auto now = std::chrono::steady_clock::now();
    if (!force && now - m_last < std::chrono::milliseconds(100)) return;
    m_last = now;
    double secs = std::chrono::duration<double>(now - m_start).count();
    double frac = m_total ? static_cast<double>(m_done) / static_cast<double>(m_total) : 1.0;
    if (frac > 1) frac = 1;
    const int width = 30;
    int fill = static_cast<int>(frac * width);
    std::string bar(static_cast<std::size_t>(fill), '#');
    bar.resize(width, '.');
    double rate = secs > 0 ? static_cast<double>(m_done) / secs : 0;
    std::string eta = rate > 0 && m_total > m_done
                          ? str::human_duration(static_cast<double>(m_total - m_done) / rate)
                          : "-";
    std::fprintf(stderr, "\r%s [%s] %3d%% %s/%s %s/s ETA %s\x1b[K", m_label.c_str(), bar.c_str(),
                 static_cast<int>(frac * 100), str::human_bytes(m_done).c_str(),
                 str::human_bytes(m_total).c_str(),
                 str::human_bytes(static_cast<std::uint64_t>(rate)).c_str(), eta.c_str());
    std::fflush(stderr);
}

void Progress::done() {
    if (m_finished) return;
    m_finished = true;
    if (!m_enabled) return;
    draw(true);
    std::fprintf(stderr, "\n");
}

} // namespace berth::term
