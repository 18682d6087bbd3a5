// The save/restore protocol over one SSH connection (stdin/stdout of `berth agent ...`).
//
// save:    client -> agent: a JSON header line, the parent tree, the ids the repository has.
//          agent -> client: records, each a type byte and a body:
//            'T' total bytes and files (u64,u64)        'P' bytes done so far (u64)
//            'C' a chunk the repository lacks: id, raw_len, flags, stored bytes
//            'E' an entry (a one-entry tree)            'Z' JSON stats, end
//            'X' an error message, end
// restore: client -> agent: a JSON header line, the tree, then the chunks of every file in
//          tree order, each 'C' as above (stored form: transfer stays compressed);
//          agent -> client: 'Z' JSON stats or 'X' error.
// Only chunks the repository lacks cross the wire, compressed; no temporary copy is made.
#pragma once

#include "store/save.hpp"

#include <functional>
#include <string>

namespace berth::store {

// Agent side: read the request on in_fd, answer on out_fd. Return the process exit code.
int agent_save_stream(int in_fd, int out_fd);
int agent_restore_stream(int in_fd, int out_fd);

struct RemoteSave {
    std::string root; // "/"
    std::vector<std::string> paths;
    std::string repo_id;
    ChunkerParams chunker;
    const Tree *parent = nullptr;
    std::string parent_tree_id;
    IdHasher ids; // the repository's naming key goes to the machine (on stdin), never its
                  // encryption key: the machine chunks and names, the client seals
};

// Client side of a save: feeds received chunks and entries to sink (which writes the repository).
Result<SaveStats> client_save(int to_agent, int from_agent, const RemoteSave &req,
                              const std::vector<ChunkId> &known, SaveSink &sink);

// Client side of a restore: sends the tree and every file's chunks, in stored form.
using StoredChunk = std::function<Result<std::pair<std::uint8_t, std::string>>(
    const ChunkId &, std::uint32_t &raw_len)>;
Result<RestoreStats> client_restore(int to_agent, int from_agent, const Tree &t,
                                    const std::string &tree_id, const std::string &target,
                                    const std::string &repo_id,
                                    const std::vector<std::string> &paths, const IdHasher &ids,
                                    const StoredChunk &get,
                                    const std::function<void(std::uint64_t)> &progress);

} // namespace berth::store
