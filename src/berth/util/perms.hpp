// Unix permission modes explained in words (the seed gets the digits wrong: r=4, w=2, x=1).
#pragma once

#include "util/result.hpp"

#include <string>
#include <sys/types.h>
#include <vector>

namespace berth::perms {

// Parses "744", "0744", "4755" or "rwxr--r--". Fails naming the bad input.
Result<mode_t> parse(const std::string &s);

// "rwxr--r--" (with s/S/t/T for the special bits).
std::string symbolic(mode_t m);

// One line per class: "owner  7 = 4 (read) + 2 (write) + 1 (execute)  rwx".
std::vector<std::string> explain(mode_t m);

} // namespace berth::perms
