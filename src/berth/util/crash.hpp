// Fault injection for crash and concurrency tests, at named steps of a migration:
//   BERTH_CRASH_AT=<step>[:<n>]  kill -9 ourselves the n-th time (default first) we reach <step>;
//   BERTH_PAUSE_AT=<step>[:<n>]  at that point create $BERTH_PAUSE_FILE.reached and wait while
//                                $BERTH_PAUSE_FILE exists (a test holds us mid-migration).
// Costs one comparison per step when unset.
#pragma once

#include <string_view>

namespace berth {

void crash_point(std::string_view step);

} // namespace berth
