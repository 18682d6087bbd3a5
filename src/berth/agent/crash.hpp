// Fault injection for crash tests: BERTH_CRASH_AT=<step>[:<n>] kills the process with SIGKILL
// the n-th time (default first) it reaches <step>. Costs one comparison when unset.
#pragma once

#include <string_view>

namespace berth {

void crash_point(std::string_view step);

} // namespace berth
