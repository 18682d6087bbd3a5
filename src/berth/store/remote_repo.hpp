// A repository on another host, over one SSH connection: `berth repo serve PATH` runs there
// (berth's own static binary) and this side speaks to its stdin/stdout. Only what the remote
// repository lacks crosses the wire: a save first asks for the ids it has.
//
// The protocol is requests of one op byte, a u32 length and a body; every request but 'A' is
// answered by 'K' (ok) or 'E' (an error message), a u32 length and a body. 'A' (add a chunk)
// is not answered, so chunks stream without a round trip each; the server keeps the first
// failure and answers it at the next 'C' (commit). The server checks every chunk against its id
// before keeping it, so a client can never poison the repository's deduplication.
//
//   H hello {"version":1,"create":bool} -> {"id","chunker":{min,avg,max},"append_only"}
//   L lock (1 byte: exclusive)       I ids -> 32-byte ids back to back
//   A id(32) raw_len(u32) flags(u8) stored bytes     C commit
//   R id(32) -> flags(u8) raw_len(u32) stored bytes
//   T tree bytes -> tree id          G tree id -> tree bytes
//   S snapshot json                  N scan -> {"good":[json...],"damaged":[[id,why]...]}
//   F ref -> snapshot json           X ref -> forgotten id (refused when append-only)
//   V verify -> report json          P prune -> report json (refused when append-only)
#pragma once

#include "store/repo_store.hpp"
#include "util/process.hpp"

#include <mutex>
#include <set>

namespace berth::store {

class RemoteRepository : public RepoStore {
public:
    // Takes over a running `berth repo serve` (its stdin and stdout); says hello.
    // When hello fails and the far end exited, *exit_status (if given) gets its status.
    static Result<std::unique_ptr<RemoteRepository>>
    connect(proc::Pipe pipe, std::string where, bool create, int *exit_status = nullptr);
    ~RemoteRepository() override;

    std::string location() const override { return m_where; }
    const std::string &id() const override { return m_id; }
    ChunkerParams chunker() const override { return m_chunker; }
    bool append_only() const { return m_append_only; }

    Result<> lock(bool exclusive) override;
    std::vector<ChunkId> chunk_ids() const override { return m_ids; }
    Result<> add(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                 std::string_view stored) override;
    Result<> commit() override;
    Result<std::pair<std::uint8_t, std::string>> read_stored(const ChunkId &id,
                                                             std::uint32_t &raw_len) override;
    Result<std::string> put_tree(const Tree &t) override;
    Result<Tree> get_tree(const std::string &id) override;
    Result<> put_snapshot(const Snapshot &s) override;
    SnapshotScan scan_snapshots() override;
    Result<Snapshot> find_snapshot(const std::string &ref) override;
    Result<std::string> forget(const std::string &ref) override;
    Result<VerifyReport> verify(const std::function<void(std::uint64_t)> &progress) override;
    Result<PruneReport> prune() override;

    std::uint64_t bytes_sent() const { return m_sent; }

private:
    RemoteRepository(proc::Pipe p, std::string where) : m_pipe(p), m_where(std::move(where)) {}
    Result<std::string> call(char op, std::string_view body);
    Result<> send(char op, std::string_view body);
    proc::Pipe m_pipe;
    std::string m_where, m_id;
    ChunkerParams m_chunker;
    bool m_append_only = false;
    std::vector<ChunkId> m_ids;
    std::set<std::string> m_trees; // trees the far end has (read or written): never sent again
    std::uint64_t m_sent = 0;
    std::mutex m_mu; // one conversation: restore's prefetcher reads from another thread
};

// The server: answers requests on in_fd/out_fd against the repository at root until the
// client hangs up. Append-only refuses forget and prune (it can add and read, never delete or
// rewrite). Returns the process exit code.
int serve_repository(int in_fd, int out_fd, const std::filesystem::path &root, bool append_only);

} // namespace berth::store
