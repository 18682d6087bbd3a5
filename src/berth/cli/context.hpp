// What every command gets: parsed global options, the configuration, and the output channel.
#pragma once

#include "core/config.hpp"
#include "util/result.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace berth::cli {

// Thrown to abort a command; caught once, in main, and printed as one line.
class Abort : public std::runtime_error {
public:
    explicit Abort(Error e) : std::runtime_error(e.line()), error(std::move(e)) {}
    Error error;
};

struct Context {
    bool json = false;
    std::string store_flag;             // --store
    std::string home_flag;              // --home
    std::vector<std::string> overrides; // -c key=value
    Config config;
    int exit_code = 0; // set by commands that finish with "problems found"

    std::filesystem::path home() const;
    // Configured store path ("" = auto-detect): --store > config `store`.
    std::string store_setting() const;
};

// Unwraps a Result or aborts the command with its error.
template <class T> T must(Result<T> r) {
    if (!r) throw Abort(r.error());
    if constexpr (!std::is_void_v<T>) return std::move(*r);
}
inline void must(Result<> r) {
    if (!r) throw Abort(r.error());
}

// Prints a JSON document (one line, stable keys) to stdout.
void print_json(const nlohmann::json &j);

// Prints a line to stdout.
void say(const std::string &line);
// "berth: warning: ..." on stderr.
void warn(const std::string &line);

} // namespace berth::cli
