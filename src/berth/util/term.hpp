// Terminal output: colour only on a terminal and never under NO_COLOR; a progress bar that
// draws on stderr only when stderr is a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace berth::term {

enum class Color { none, red, green, yellow, blue, bold, dim };

// Whether fd 1 (or 2) gets colour: a tty, NO_COLOR unset, TERM not "dumb".
bool color_enabled(int fd);

// Wraps s in the colour's escape codes when enabled for fd.
std::string paint(std::string_view s, Color c, int fd = 1);

class Progress {
public:
    // A bar for `total` bytes labelled `label`; invisible unless stderr is a terminal.
    Progress(std::string label, std::uint64_t total);
    ~Progress();
    void add(std::uint64_t bytes);
    void done();

private:
    void draw(bool force);
    std::string m_label;
    std::uint64_t m_total, m_done = 0;
    bool m_enabled, m_finished = false;
    std::chrono::steady_clock::time_point m_start, m_last;
};

} // namespace berth::term
