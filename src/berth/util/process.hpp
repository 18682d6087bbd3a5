// Running other programs (ssh, ssh-keygen, python3) without a shell in between.
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace berth::proc {

struct Output {
    int status = -1; // exit status, or 128+signal
    std::string out, err;
    bool timed_out = false;
};

struct Options {
    std::optional<std::string> input;     // fed to stdin; else /dev/null
    std::vector<std::string> env;         // extra "K=V" entries
    std::chrono::milliseconds timeout{0}; // 0: none; the child is killed at the deadline
};

// Runs argv[0] (looked up on PATH) and captures both streams. Fails only if it cannot start.
Result<Output> run(const std::vector<std::string> &argv, const Options &opt = {});

// Full path of an executable on PATH, or nullopt.
std::optional<std::string> which(const std::string &name);

} // namespace berth::proc

namespace berth::proc {

// A child with its stdin and stdout as pipes (stderr inherited), for streaming protocols.
struct Pipe {
    pid_t pid = -1;
    int in = -1;  // write end: the child's stdin
    int out = -1; // read end: the child's stdout
};

Result<Pipe> spawn_pipe(const std::vector<std::string> &argv);
// Closes what is still open and waits; returns the exit status (128+signal if killed).
int wait_pipe(Pipe &p);

// Full writes and reads on a file descriptor.
Result<> write_all(int fd, std::string_view data);
// Reads exactly n bytes; fails on EOF before n.
Result<std::string> read_exact(int fd, std::size_t n);

} // namespace berth::proc
