// Expected failures as values: every fallible function returns Result<T>.
// An Error is one line for the user: what went wrong, and what to do about it.
#pragma once

#include <string>
#include <tl/expected.hpp>
#include <utility>

namespace berth {

struct Error {
    std::string what; // "store /storage is not writable: Read-only file system"
    std::string fix;  // "mount it read-write or pass --store DIR" (may be empty)
    int code = 1;     // process exit code if this error ends the command

    std::string line() const { return fix.empty() ? what : what + " (" + fix + ")"; }
};

template <class T = void> using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(std::string what, std::string fix = {}, int code = 1) {
    return tl::unexpected<Error>(Error{std::move(what), std::move(fix), code});
}

// "PATH: strerror(errno)" as an Error; the caller supplies what to do.
tl::unexpected<Error> fail_errno(const std::string &what, int err, std::string fix = {});

} // namespace berth

// Propagate an error from an expression returning Result<...>.
#define BERTH_TRY(expr)                                                                            \
    do {                                                                                           \
        auto berth_try_r_ = (expr);                                                                \
        if (!berth_try_r_) return tl::unexpected(std::move(berth_try_r_.error()));                 \
    } while (0)
