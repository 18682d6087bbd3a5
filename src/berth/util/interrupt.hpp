// SIGINT and SIGTERM as a flag that long operations check between their steps, so an
// interrupted command can finish or undo what it started instead of dying halfway. A third
// signal ends the process at once (exit 130); the next command then resolves what was left.
#pragma once

namespace berth::interrupt {

// Installs the handlers (idempotent). Until then the signals keep their default action.
void install();
// True once SIGINT or SIGTERM arrived after install().
bool requested();
// The signal that arrived (SIGINT, SIGTERM), or 0.
int signal_number();
// For tests: clears the flag.
void reset();

} // namespace berth::interrupt
