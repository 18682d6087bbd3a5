// A repository's files on another host, through `berth repo serve` at the other end of one
// byte stream (an SSH connection): a framed request/answer protocol over stdin/stdout. Writes
// stream without waiting for answers (their failures come back at the next check or sync),
// so a save runs at the link's speed, not its round-trip time.
//
// The server only stores, lists and reads files under names it validates; it never sees a
// key. Append-only (the machines' key in the host's authorized_keys) refuses removal and
// creation: such a key can add snapshots and read them, never delete or rewrite history.
#pragma once

#include "store/backend.hpp"
#include "util/process.hpp"

#include <memory>

namespace berth::store {

// Takes over a running `berth repo serve` (its stdin and stdout) and says hello. When hello
// fails and the far end exited, *exit_status (if given) gets its status.
Result<std::unique_ptr<Backend>> connect_remote_backend(proc::Pipe pipe, std::string where,
                                                        int *exit_status = nullptr);
// Bytes written to the connection so far (the benchmark's "bytes sent").
std::uint64_t remote_bytes_sent(const Backend &b);

// The server: answers requests on in_fd/out_fd against the directory `root` until the client
// hangs up. Returns the process exit code.
int serve_repository(int in_fd, int out_fd, const std::filesystem::path &root, bool append_only);

} // namespace berth::store
