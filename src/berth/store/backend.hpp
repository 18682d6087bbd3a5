// Where a repository's files live. A repository is a handful of kinds of immutable files
// (config.json, keys/, data/, index/, trees/, snapshots/); a backend stores, lists, reads and
// removes them and knows nothing of what they hold. With encryption on, a backend only ever
// sees sealed bytes under opaque names.
//
//   LocalBackend   a directory on this machine
//   RemoteBackend  a directory on another host, through `berth repo serve` over one SSH
//                  connection (append-only when the host's key says so)
#pragma once

#include "util/result.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::store {

struct ListedFile {
    std::string name; // e.g. "index/<pack>.idx", relative to the repository
    std::uint64_t size = 0;
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual std::string location() const = 0;
    virtual std::optional<std::filesystem::path> local_root() const { return std::nullopt; }
    // Whether a berth on the far end refuses removal (the machines' key of an SSH host).
    virtual bool append_only() const { return false; }

    // The whole file, or nullopt when it does not exist.
    virtual Result<std::optional<std::string>> get(const std::string &name) = 0;
    // `len` bytes at `offset` (a chunk inside a pack).
    virtual Result<std::string> get_range(const std::string &name, std::uint64_t offset,
                                          std::uint32_t len) = 0;
    // Creates a file, atomically (whole or absent); never replaces one. durable: on disk
    // before it returns; otherwise at the next sync(). A backend may report a failure of a
    // put only at the next check() or sync().
    virtual Result<> put(const std::string &name, std::string_view bytes, bool durable) = 0;
    // Everything put so far is durable; reports the first failure since the last call.
    virtual Result<> sync() = 0;
    // Reports the first failure of a put since the last call (cheap: no flush).
    virtual Result<> check() { return {}; }
    // Files under a folder ("data" lists data/xx/... too).
    virtual Result<std::vector<ListedFile>> list(const std::string &folder) = 0;
    virtual Result<> remove(const std::string &name) = 0;
    // exclusive: save, forget, prune. shared: restore, verify, diff. Held until destroyed.
    virtual Result<> lock(bool exclusive) = 0;
    // Makes a new repository of these files (config.json last) unless one is there already.
    virtual Result<> create(const std::vector<std::pair<std::string, std::string>> &files) = 0;
};

// The names a repository may hold. Every name from outside (a request to `repo serve`, a
// listing) is checked against this before it touches a path.
bool valid_repo_name(std::string_view name);

// A directory on this machine.
std::unique_ptr<Backend> local_backend(const std::filesystem::path &root);

} // namespace berth::store
