#include "util/perms.hpp"

#include <cstdio>
#include <sys/stat.h>

namespace berth::perms {

Result<mode_t> parse(const std::string &s) {
    if (s.size() == 9 && s.find_first_not_of("rwxsStT-") == std::string::npos) {
        const char *expect = "rwxrwxrwx";
        mode_t m = 0;
        for (int i = 0; i < 9; ++i) {
            char c = s[static_cast<std::size_t>(i)];
            mode_t bit = static_cast<mode_t>(1u << (8 - i));
            bool x_slot = (i % 3) == 2;
            if (c == expect[i]) {
                m |= bit;
            } else if (x_slot && (c == 's' || c == 'S' || c == 't' || c == 'T')) {
                bool is_t = c == 't' || c == 'T';
                if (is_t != (i == 8)) return fail("'" + s + "' is not a valid mode string");
                m |= i == 2 ? S_ISUID : i == 5 ? S_ISGID : S_ISVTX;
                if (c == 's' || c == 't') m |= bit;
            } else if (c != '-') {
                return fail("'" + s + "' is not a valid mode string",
                            "use octal like 744 or symbolic like rwxr--r--");
            }
        }
        return m;
    }
    if (s.empty() || s.size() > 4 || s.find_first_not_of("01234567") != std::string::npos)
        return fail("'" + s + "' is not a permission mode",
                    "use 3 or 4 octal digits like 744, or symbolic like rwxr--r--", 2);
    return static_cast<mode_t>(std::stoul(s, nullptr, 8));
}

std::string symbolic(mode_t m) {
    std::string out = "---------";
    const char *rwx = "rwx";
    for (int i = 0; i < 9; ++i)
        if (m & (1u << (8 - i))) out[static_cast<std::size_t>(i)] = rwx[i % 3];
    auto special = [&](mode_t bit, std::size_t pos, char on, char off) {
        if (m & bit) out[pos] = out[pos] == 'x' ? on : off;
    };
    special(S_ISUID, 2, 's', 'S');
    special(S_ISGID, 5, 's', 'S');
    special(S_ISVTX, 8, 't', 'T');
    return out;
}

std::vector<std::string> explain(mode_t m) {
    std::vector<std::string> lines;
    const char *who[] = {"owner ", "group ", "others"};
    const std::string sym = symbolic(m);
    for (int c = 0; c < 3; ++c) {
        unsigned d = (m >> (3 * (2 - c))) & 7;
        std::string parts;
        const char *names[] = {"read", "write", "execute"};
        const unsigned vals[] = {4, 2, 1};
        for (int b = 0; b < 3; ++b) {
            if (!(d & vals[b])) continue;
            if (!parts.empty()) parts += " + ";
            parts += std::to_string(vals[b]) + " (" + names[b] + ")";
        }
        if (parts.empty()) parts = "0 (no access)";
        char buf[160];
        std::snprintf(buf, sizeof buf, "%s %u = %-36s %s", who[c], d, parts.c_str(),
                      sym.substr(static_cast<std::size_t>(3 * c), 3).c_str());
        lines.emplace_back(buf);
    }
    if (m & S_ISUID) lines.emplace_back("setuid: runs with the owner's user id (4000)");
    if (m & S_ISGID)
        lines.emplace_back(
            "setgid: runs with the group's id; new files inherit the directory's group (2000)");
    if (m & S_ISVTX)
        lines.emplace_back(
            "sticky: in a directory, only a file's owner may delete or rename it (1000)");
    return lines;
}

} // namespace berth::perms
