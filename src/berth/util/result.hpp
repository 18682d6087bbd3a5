// Expected failures as values: every fallible function returns Result<T>.
// An Error is one line for the user: what went wrong, and what to do about it.
#pragma once

#include <string>
#include <tl/expected.hpp>
#include <utility>

namespace berth {

// What kind of failure an error is, separate from the exit code: retries and recovery are
// decided by kind (a network error or a timeout may be retried; a refusal never is).
enum class ErrorKind {
    other,       // anything not classified below
    network,     // no answer: DNS, connect, TLS, a dropped connection
    timeout,     // no complete answer within the deadline
    refused,     // the other side answered no (4xx other than below, a failed check)
    not_found,   // what was asked for does not exist (404, an unknown name)
    conflict,    // it exists already, or is busy (409, a name taken, a lock held)
    malformed,   // an answer of the wrong shape: a missing field, a wrong type, not JSON
    user,        // the command line or the config is wrong
    interrupted, // SIGINT or SIGTERM
};

const char *error_kind_name(ErrorKind k);

struct Error {
    std::string what; // "store /storage is not writable: Read-only file system"
    std::string fix;  // "mount it read-write or pass --store DIR" (may be empty)
    int code = 1;     // process exit code if this error ends the command
    ErrorKind kind = ErrorKind::other;

    std::string line() const { return fix.empty() ? what : what + " (" + fix + ")"; }
};

template <class T = void> using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> fail(std::string what, std::string fix = {}, int code = 1) {
    return tl::unexpected<Error>(Error{std::move(what), std::move(fix), code,
                                       code == 2 ? ErrorKind::user : ErrorKind::other});
}

inline tl::unexpected<Error> fail(ErrorKind kind, std::string what, std::string fix = {},
                                  int code = 1) {
    return tl::unexpected<Error>(Error{std::move(what), std::move(fix), code, kind});
}

// A retry may help: the network, a timeout.
inline bool transient(const Error &e) {
    return e.kind == ErrorKind::network || e.kind == ErrorKind::timeout;
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
