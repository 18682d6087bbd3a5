// Running other programs (ssh, ssh-keygen, python3) without a shell in between.
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace berth::proc {

struct Output {
    int status = -1; // exit status, or 128+signal
    std::string out, err;
    bool timed_out = false;
};

struct Options {
    std::optional<std::string> input;                 // fed to stdin; else /dev/null
    std::vector<std::string> env;                     // extra "K=V" entries
    std::chrono::milliseconds timeout{0};             // 0: none; the child is killed at the deadline
};

// Runs argv[0] (looked up on PATH) and captures both streams. Fails only if it cannot start.
Result<Output> run(const std::vector<std::string> &argv, const Options &opt = {});

// Full path of an executable on PATH, or nullopt.
std::optional<std::string> which(const std::string &name);

} // namespace berth::proc
