// berth's exit codes. Documented in docs/CLI.md; scripts rely on them, so never renumber.
#pragma once

namespace berth::exit_code {

inline constexpr int ok = 0;       // the command did what was asked
inline constexpr int failure = 1;  // it could not (the message says why and what to do)
inline constexpr int usage = 2;    // bad command line: unknown command, flag or value
inline constexpr int problems = 3; // a check ran and found problems (doctor, keys test)
inline constexpr int busy = 4;     // another berth holds the lock on the same store
inline constexpr int interrupted = 130;

} // namespace berth::exit_code
