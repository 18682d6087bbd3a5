#include "store/remote_repo.hpp"

#include "store/compress.hpp"
#include "store/repository.hpp"
#include "store/save.hpp"

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace berth::store {

using nlohmann::json;

namespace {

// Requests and answers are bounded: a length beyond this is damage, never an allocation.
constexpr std::uint32_t k_max_frame = (1u << 30) + 1024;

Result<> write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail_errno("the repository connection", errno ? errno : EPIPE);
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

// Reads exactly n bytes; false on end of stream.
Result<bool> read_exact(int fd, char *buf, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail_errno("the repository connection", errno);
        if (r == 0) {
            if (got == 0) return false;
            return fail("the repository connection ended in the middle of a message",
                        "see the remote host's error above");
        }
        got += static_cast<std::size_t>(r);
    }
    return true;
}

std::string frame(char op, std::string_view body) {
    std::string out(1, op);
    std::uint32_t n = static_cast<std::uint32_t>(body.size());
    out.append(reinterpret_cast<const char *>(&n), 4);
    out.append(body);
    return out;
}

struct Frame {
    char op = 0;
    std::string body;
};

// One frame; nullopt at a clean end of stream.
Result<std::optional<Frame>> read_frame(int fd) {
    char head[5];
    auto ok = read_exact(fd, head, 5);
    if (!ok) return tl::unexpected(ok.error());
    if (!*ok) return std::optional<Frame>{};
    std::uint32_t n;
    std::memcpy(&n, head + 1, 4);
    if (n > k_max_frame)
        return fail("the repository connection sent a message of " + std::to_string(n) +
                        " bytes (damaged, or not berth at the other end)",
                    "check that the host runs `berth repo serve`");
    Frame f{head[0], std::string(n, '\0')};
    if (n) {
        auto body = read_exact(fd, f.body.data(), n);
        if (!body) return tl::unexpected(body.error());
        if (!*body) return fail("the repository connection ended in the middle of a message");
    }
    return std::optional<Frame>{std::move(f)};
}

template <class T> void put(std::string &out, T v) {
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
}

json report_json(const VerifyReport &r) {
    return {{"chunks", r.chunks},
            {"bytes", r.bytes},
            {"trees", r.trees},
            {"snapshots", r.snapshots},
            {"problems", r.problems}};
}

ChunkId id_of(std::string_view b) {
    ChunkId id{};
    std::memcpy(id.data(), b.data(), 32);
    return id;
}

} // namespace

// ---- client ---------------------------------------------------------------------------------

Result<std::unique_ptr<RemoteRepository>>
RemoteRepository::connect(proc::Pipe pipe, std::string where, bool create, int *exit_status) {
    std::unique_ptr<RemoteRepository> r(new RemoteRepository(pipe, std::move(where)));
    auto hello = r->call('H', json{{"version", 1}, {"create", create}}.dump());
    if (!hello) {
        if (exit_status && r->m_pipe.pid > 0) {
            *exit_status = proc::wait_pipe(r->m_pipe);
            r->m_pipe.pid = -1;
            r->m_pipe.in = r->m_pipe.out = -1;
        }
        return tl::unexpected(hello.error());
    }
    auto j = json::parse(*hello, nullptr, false);
    if (!j.is_object() || !j.contains("id") || !j["id"].is_string() || !j.contains("chunker") ||
        !j["chunker"].is_object())
        return fail("the repository at " + r->m_where + " answered hello with something else",
                    "check that the host runs berth's `repo serve`");
    r->m_id = j["id"].get<std::string>();
    if (!is_hex(r->m_id, r->m_id.size()) || r->m_id.empty() || r->m_id.size() > 64)
        return fail("the repository at " + r->m_where + " has a malformed id");
    const auto &c = j["chunker"];
    r->m_chunker = {c.value("min", 0u), c.value("avg", 0u), c.value("max", 0u)};
    if (r->m_chunker.min == 0 || r->m_chunker.min > r->m_chunker.avg ||
        r->m_chunker.avg > r->m_chunker.max || r->m_chunker.max > k_max_chunk)
        return fail("the repository at " + r->m_where + " has malformed chunker parameters");
    r->m_append_only = j.value("append_only", false);
    auto ids = r->call('I', "");
    if (!ids) return tl::unexpected(ids.error());
    if (ids->size() % 32) return fail("the repository at " + r->m_where + " sent a torn id list");
    for (std::size_t at = 0; at < ids->size(); at += 32)
        r->m_ids.push_back(id_of(std::string_view(*ids).substr(at, 32)));
    return r;
}

RemoteRepository::~RemoteRepository() {
    if (m_pipe.pid > 0) {
        (void)proc::wait_pipe(m_pipe); // closing its stdin ends the serve; then it is reaped
        return;
    }
    if (m_pipe.in >= 0) ::close(m_pipe.in);
    if (m_pipe.out >= 0) ::close(m_pipe.out);
}

Result<> RemoteRepository::send(char op, std::string_view body) {
    auto f = frame(op, body);
    m_sent += f.size();
    return write_all(m_pipe.in, f);
}

Result<std::string> RemoteRepository::call(char op, std::string_view body) {
    BERTH_TRY(send(op, body));
    auto f = read_frame(m_pipe.out);
    if (!f) return tl::unexpected(f.error());
    if (!*f)
        return fail("the repository at " + m_where + " hung up",
                    "see the remote host's error above; is berth there and the path right?");
    if ((*f)->op == 'E') return fail(m_where + ": " + (*f)->body);
    if ((*f)->op != 'K') return fail("the repository at " + m_where + " answered out of turn");
    return std::move((*f)->body);
}

Result<> RemoteRepository::lock(bool exclusive) {
    std::lock_guard lk(m_mu);
    return call('L', std::string(1, exclusive ? '\1' : '\0')).map([](auto &&) {});
}

Result<> RemoteRepository::add(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                               std::string_view stored) {
    std::lock_guard lk(m_mu);
    std::string body(reinterpret_cast<const char *>(id.data()), 32);
    put(body, raw_len);
    put(body, flags);
    body.append(stored);
    return send('A', body);
}

Result<> RemoteRepository::commit() {
    std::lock_guard lk(m_mu);
    return call('C', "").map([](auto &&) {});
}

Result<std::pair<std::uint8_t, std::string>> RemoteRepository::read_stored(const ChunkId &id,
                                                                           std::uint32_t &raw_len) {
    std::lock_guard lk(m_mu);
    auto b = call('R', std::string_view(reinterpret_cast<const char *>(id.data()), 32));
    if (!b) return tl::unexpected(b.error());
    if (b->size() < 5) return fail("the repository at " + m_where + " sent a torn chunk");
    std::uint8_t flags = static_cast<std::uint8_t>((*b)[0]);
    std::memcpy(&raw_len, b->data() + 1, 4);
    if (raw_len > k_max_chunk) return fail("the repository at " + m_where + " sent a huge chunk");
    return std::make_pair(flags, b->substr(5));
}

Result<std::string> RemoteRepository::put_tree(const Tree &t) {
    std::lock_guard lk(m_mu);
    auto bytes = serialize(t);
    auto mine = to_hex(sha256_id(bytes.data(), bytes.size()));
    if (m_trees.count(mine)) return mine; // an unchanged workspace: the host has this tree
    auto id = call('T', bytes);
    if (id && *id != mine) return fail("the repository at " + m_where + " sent a bad tree id");
    if (id) m_trees.insert(*id);
    return id;
}

Result<Tree> RemoteRepository::get_tree(const std::string &id) {
    std::lock_guard lk(m_mu);
    auto b = call('G', id);
    if (!b) return tl::unexpected(b.error());
    auto t = parse_tree(*b);
    if (!t) return t;
    // The tree is named by its hash: a host cannot hand over another tree under this name.
    if (to_hex(sha256_id(b->data(), b->size())) != id)
        return fail("tree " + id.substr(0, 16) + " from " + m_where + " does not match its id",
                    "run `berth verify --repo " + m_where + "`");
    m_trees.insert(id);
    return t;
}

Result<> RemoteRepository::put_snapshot(const Snapshot &s) {
    std::lock_guard lk(m_mu);
    return call('S', snapshot_json(s)).map([](auto &&) {});
}

SnapshotScan RemoteRepository::scan_snapshots() {
    std::lock_guard lk(m_mu);
    SnapshotScan out;
    auto b = call('N', "");
    if (!b) {
        out.damaged.push_back({"", "cannot list " + m_where + ": " + b.error().what});
        return out;
    }
    auto j = json::parse(*b, nullptr, false);
    if (!j.is_object()) {
        out.damaged.push_back({"", m_where + " sent a malformed snapshot list"});
        return out;
    }
    for (const auto &g : j.value("good", json::array())) {
        auto s = g.is_string() ? parse_snapshot(g.get<std::string>())
                               : Result<Snapshot>(fail("not a snapshot"));
        if (s)
            out.good.push_back(*s);
        else
            out.damaged.push_back({"", "a snapshot from " + m_where + ": " + s.error().what});
    }
    for (const auto &d : j.value("damaged", json::array()))
        if (d.is_array() && d.size() == 2 && d[0].is_string() && d[1].is_string())
            out.damaged.push_back({d[0].get<std::string>(), d[1].get<std::string>()});
    return out;
}

Result<Snapshot> RemoteRepository::find_snapshot(const std::string &ref) {
    std::lock_guard lk(m_mu);
    auto b = call('F', ref);
    if (!b) return tl::unexpected(b.error());
    return parse_snapshot(*b);
}

Result<std::string> RemoteRepository::forget(const std::string &ref) {
    std::lock_guard lk(m_mu);
    return call('X', ref);
}

Result<VerifyReport> RemoteRepository::verify(const std::function<void(std::uint64_t)> &) {
    std::lock_guard lk(m_mu);
    auto b = call('V', "");
    if (!b) return tl::unexpected(b.error());
    auto j = json::parse(*b, nullptr, false);
    if (!j.is_object()) return fail(m_where + " sent a malformed verify report");
    VerifyReport r;
    r.chunks = j.value("chunks", 0ull);
    r.bytes = j.value("bytes", 0ull);
    r.trees = j.value("trees", 0ull);
    r.snapshots = j.value("snapshots", 0ull);
    for (const auto &p : j.value("problems", json::array()))
        if (p.is_string()) r.problems.push_back(p.get<std::string>());
    return r;
}

Result<PruneReport> RemoteRepository::prune() {
    std::lock_guard lk(m_mu);
    auto b = call('P', "");
    if (!b) return tl::unexpected(b.error());
    auto j = json::parse(*b, nullptr, false);
    if (!j.is_object()) return fail(m_where + " sent a malformed prune report");
    return PruneReport{j.value("packs_removed", 0ull), j.value("bytes_freed", 0ull),
                       j.value("orphan_packs", 0ull), j.value("unused_bytes_kept", 0ull)};
}

// ---- server ---------------------------------------------------------------------------------

int serve_repository(int in_fd, int out_fd, const std::filesystem::path &root, bool append_only) {
    std::optional<Repository> repo;
    std::optional<Error> add_failure; // the first failed 'A', answered at the next 'C'
    auto answer = [&](const Result<std::string> &r) {
        auto f =
            r ? frame('K', *r)
              : frame('E', r.error().what + (r.error().fix.empty() ? std::string()
                                                                   : " (" + r.error().fix + ")"));
        return bool(write_all(out_fd, f));
    };
    auto done = [](Result<> r) -> Result<std::string> {
        if (!r) return tl::unexpected(r.error());
        return std::string();
    };
    for (;;) {
        auto f = read_frame(in_fd);
        if (!f) {
            (void)answer(tl::unexpected(f.error()));
            return 1;
        }
        if (!*f) return 0; // the client is done
        char op = (*f)->op;
        std::string_view b = (*f)->body;
        if (op == 'H') {
            auto j = json::parse(b, nullptr, false);
            if (!j.is_object() || j.value("version", 0) != 1) {
                (void)answer(fail("this berth speaks repository protocol 1",
                                  "use the same berth version on both ends"));
                return 1;
            }
            auto r = Repository::open(root, j.value("create", false));
            if (!r) {
                (void)answer(tl::unexpected(r.error()));
                return 1;
            }
            repo.emplace(std::move(*r));
            repo->set_batch_packs(2); // durable every 64 MiB: a cut link resends little
            auto c = repo->chunker();
            if (!answer(json{{"id", repo->id()},
                             {"chunker", {{"min", c.min}, {"avg", c.avg}, {"max", c.max}}},
                             {"append_only", append_only}}
                            .dump()))
                return 1;
            continue;
        }
        if (!repo) {
            (void)answer(fail("the client spoke before hello"));
            return 1;
        }
        Result<std::string> r = std::string();
        switch (op) {
        case 'L':
            r = done(repo->lock(!b.empty() && b[0] != 0));
            break;
        case 'I': {
            std::string out;
            for (const auto &id : repo->chunk_ids())
                out.append(reinterpret_cast<const char *>(id.data()), 32);
            r = std::move(out);
            break;
        }
        case 'A': {
            if (add_failure) continue;
            if (b.size() < 37) {
                add_failure = Error{"a torn chunk record"};
                continue;
            }
            ChunkId id = id_of(b);
            std::uint32_t raw_len;
            std::memcpy(&raw_len, b.data() + 32, 4);
            auto flags = static_cast<std::uint8_t>(b[36]);
            auto stored = b.substr(37);
            // Kept only if it is what its id says: no client poisons deduplication.
            auto raw = decompress(stored, flags, raw_len);
            if (!raw || sha256_id(raw->data(), raw->size()) != id) {
                add_failure = Error{"chunk " + to_hex(id).substr(0, 16) +
                                    " does not match its id; nothing of it was kept"};
                continue;
            }
            auto a = repo->add(id, raw_len, flags, stored);
            if (!a) add_failure = a.error();
            continue; // no answer: chunks stream
        }
        case 'C':
            if (add_failure) {
                r = tl::unexpected(*add_failure);
                add_failure.reset();
            } else {
                r = done(repo->commit());
            }
            break;
        case 'R': {
            if (b.size() != 32) {
                r = fail("a malformed chunk request");
                break;
            }
            std::uint32_t raw_len = 0;
            auto s = repo->read_stored(id_of(b), raw_len);
            if (!s) {
                r = tl::unexpected(s.error());
                break;
            }
            std::string out(1, static_cast<char>(s->first));
            put(out, raw_len);
            out.append(s->second);
            r = std::move(out);
            break;
        }
        case 'T': {
            auto t = parse_tree(std::string(b));
            if (!t) {
                r = tl::unexpected(t.error());
                break;
            }
            auto checked = check_tree(*t);
            r = checked ? repo->put_tree(*t) : Result<std::string>(tl::unexpected(checked.error()));
            break;
        }
        case 'G': {
            auto t = repo->get_tree(std::string(b));
            r = t ? Result<std::string>(serialize(*t)) : tl::unexpected(t.error());
            break;
        }
        case 'S': {
            auto s = parse_snapshot(std::string(b));
            if (!s) {
                r = tl::unexpected(s.error());
            } else if (repo->find_snapshot(s->id)) { // history is never rewritten
                r = fail("snapshot " + s->id + " exists already; it is not replaced");
            } else {
                auto t = repo->get_tree(s->tree); // a snapshot names a tree the repository has
                r = t ? done(repo->put_snapshot(*s)) : tl::unexpected(t.error());
            }
            break;
        }
        case 'N': {
            auto scan = repo->scan_snapshots();
            json good = json::array(), bad = json::array();
            for (const auto &s : scan.good)
                good.push_back(snapshot_json(s));
            for (const auto &[id, why] : scan.damaged)
                bad.push_back({id, why});
            r = json{{"good", good}, {"damaged", bad}}.dump();
            break;
        }
        case 'F': {
            auto s = repo->find_snapshot(std::string(b));
            r = s ? Result<std::string>(snapshot_json(*s)) : tl::unexpected(s.error());
            break;
        }
        case 'X':
            r = append_only ? Result<std::string>(fail(
                                  "this repository is append-only for this key: it cannot forget",
                                  "forget from a machine that holds the owner's key"))
                            : repo->forget(std::string(b));
            break;
        case 'V': {
            auto v = repo->verify([](std::uint64_t) {});
            r = v ? Result<std::string>(report_json(*v).dump()) : tl::unexpected(v.error());
            break;
        }
        case 'P': {
            if (append_only) {
                r = fail("this repository is append-only for this key: it cannot prune",
                         "prune from a machine that holds the owner's key");
                break;
            }
            auto p = repo->prune();
            r = p ? Result<std::string>(json{{"packs_removed", p->packs_removed},
                                             {"bytes_freed", p->bytes_freed},
                                             {"orphan_packs", p->orphan_packs},
                                             {"unused_bytes_kept", p->unused_bytes_kept}}
                                            .dump())
                  : tl::unexpected(p.error());
            break;
        }
        default:
            (void)answer(fail(std::string("unknown request '") + op + "'"));
            return 1;
        }
        if (!answer(r)) return 1;
    }
}

} // namespace berth::store
