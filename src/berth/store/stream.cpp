#include "store/stream.hpp"

#include "store/compress.hpp"
#include "util/process.hpp"

#include <cstring>
#include <nlohmann/json.hpp>
#include <unistd.h>
#include <unordered_set>

namespace berth::store {

namespace {

struct IdHash {
    std::size_t operator()(const ChunkId &id) const {
        std::size_t h;
        std::memcpy(&h, id.data(), sizeof h);
        return h;
    }
};

template <class T> void put(std::string &out, T v) {
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
}
template <class T> T get(const std::string &s, std::size_t at) {
    T v;
    std::memcpy(&v, s.data() + at, sizeof v);
    return v;
}

Result<std::string> read_line(int fd) {
    std::string line;
    char c;
    for (;;) {
        ssize_t n = ::read(fd, &c, 1);
        if (n <= 0) return fail("the stream ended before its header");
        if (c == '\n') return line;
        line += c;
        if (line.size() > (1 << 20)) return fail("stream header too long");
    }
}

Result<std::string> read_blob(int fd) {
    auto len = proc::read_exact(fd, 8);
    if (!len) return tl::unexpected(len.error());
    auto n = get<std::uint64_t>(*len, 0);
    if (n > (std::uint64_t(1) << 34)) return fail("stream blob too large");
    return proc::read_exact(fd, static_cast<std::size_t>(n));
}

void put_blob(std::string &out, const std::string &b) {
    put<std::uint64_t>(out, b.size());
    out += b;
}

std::string chunk_record(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                         std::string_view stored) {
    std::string r(1, 'C');
    r.append(reinterpret_cast<const char *>(id.data()), 32);
    put(r, raw_len);
    put(r, flags);
    put<std::uint32_t>(r, static_cast<std::uint32_t>(stored.size()));
    r.append(stored);
    return r;
}

struct ChunkRec {
    ChunkId id;
    std::uint32_t raw_len;
    std::uint8_t flags;
    std::string stored;
};

Result<ChunkRec> read_chunk_body(int fd) {
    auto head = proc::read_exact(fd, 32 + 4 + 1 + 4);
    if (!head) return tl::unexpected(head.error());
    ChunkRec c;
    std::memcpy(c.id.data(), head->data(), 32);
    c.raw_len = get<std::uint32_t>(*head, 32);
    c.flags = get<std::uint8_t>(*head, 36);
    auto len = get<std::uint32_t>(*head, 37);
    if (len > (64u << 20)) return fail("stream chunk too large");
    auto body = proc::read_exact(fd, len);
    if (!body) return tl::unexpected(body.error());
    c.stored = std::move(*body);
    return c;
}

// The agent's sink: everything goes out on the stream.
class StreamSink : public SaveSink {
public:
    StreamSink(int fd, std::unordered_set<ChunkId, IdHash> known, bool totals)
        : m_fd(fd), m_known(std::move(known)), m_totals(totals) {}
    bool wants_total() const override { return m_totals; }
    bool has(const ChunkId &id) override { return m_known.count(id) != 0; }
    Result<> chunk(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                   std::string_view stored) override {
        m_known.insert(id);
        return proc::write_all(m_fd, chunk_record(id, raw_len, flags, stored));
    }
    Result<> entry(const Entry &e) override {
        std::string r(1, 'E');
        put_blob(r, serialize(Tree{{e}}));
        return proc::write_all(m_fd, r);
    }
    void total(std::uint64_t bytes, std::uint64_t files) override {
        std::string r(1, 'T');
        put(r, bytes);
        put(r, files);
        (void)proc::write_all(m_fd, r);
    }
    void progress(std::uint64_t n) override {
        m_done += n;
        if (m_done - m_sent < (8 << 20)) return;
        m_sent = m_done;
        std::string r(1, 'P');
        put(r, m_done);
        (void)proc::write_all(m_fd, r);
    }

private:
    int m_fd;
    std::unordered_set<ChunkId, IdHash> m_known;
    std::uint64_t m_done = 0, m_sent = 0;
    bool m_totals = false;
};

int answer_error(int fd, const Error &e) {
    std::string r(1, 'X');
    put_blob(r, e.line());
    (void)proc::write_all(fd, r);
    return 1;
}

} // namespace

int agent_save_stream(int in_fd, int out_fd) {
    auto line = read_line(in_fd);
    if (!line) return answer_error(out_fd, line.error());
    auto h = nlohmann::json::parse(*line, nullptr, false);
    if (!h.is_object()) return answer_error(out_fd, Error{"bad save request"});
    auto parent_bytes = read_blob(in_fd);
    auto known_bytes = read_blob(in_fd);
    if (!parent_bytes || !known_bytes) return answer_error(out_fd, Error{"truncated save request"});
    std::unordered_set<ChunkId, IdHash> known;
    for (std::size_t p = 0; p + 32 <= known_bytes->size(); p += 32) {
        ChunkId id;
        std::memcpy(id.data(), known_bytes->data() + p, 32);
        known.insert(id);
    }
    Tree parent;
    bool has_parent = !parent_bytes->empty();
    if (has_parent) {
        auto t = parse_tree(*parent_bytes);
        if (!t) return answer_error(out_fd, t.error());
        parent = std::move(*t);
    }
    SaveOptions opt;
    opt.root = h.value("root", std::string("/"));
    opt.paths = h.value("paths", std::vector<std::string>{});
    opt.chunker = {h["chunker"].value("min", 131072ul), h["chunker"].value("avg", 524288ul),
                   h["chunker"].value("max", 2097152ul)};
    opt.parent = has_parent ? &parent : nullptr;
    opt.parent_tree_id = h.value("parent_tree", std::string());
    opt.cache_file = cache_file_for(h.value("repo_id", std::string()), opt.root, opt.paths);
    auto ids = IdHasher::from_hex(h.value("id_key", std::string()));
    if (!ids) return answer_error(out_fd, ids.error());
    opt.ids = *ids;
    StreamSink sink(out_fd, std::move(known), h.value("progress", false));
    auto stats = save_tree(opt, sink);
    if (!stats) return answer_error(out_fd, stats.error());
    nlohmann::json j{{"files", stats->files},           {"dirs", stats->dirs},
                     {"bytes", stats->bytes},           {"bytes_read", stats->bytes_read},
                     {"files_read", stats->files_read}, {"new_chunks", stats->new_chunks},
                     {"new_bytes", stats->new_bytes},   {"stored_bytes", stats->stored_bytes},
                     {"tree", stats->tree_id}};
    std::string r(1, 'Z');
    put_blob(r, j.dump());
    return proc::write_all(out_fd, r) ? 0 : 1;
}

Result<SaveStats> client_save(int to_agent, int from_agent, const RemoteSave &req,
                              const std::vector<ChunkId> &known, SaveSink &sink) {
    nlohmann::json h{
        {"root", req.root},
        {"paths", req.paths},
        {"repo_id", req.repo_id},
        {"parent_tree", req.parent_tree_id},
        {"id_key", req.ids.key_hex()},
        {"progress", sink.wants_total()},
        {"chunker",
         {{"min", req.chunker.min}, {"avg", req.chunker.avg}, {"max", req.chunker.max}}}};
    std::string msg = h.dump() + "\n";
    put_blob(msg, req.parent ? serialize(*req.parent) : std::string());
    std::string ids;
    ids.reserve(known.size() * 32);
    for (const auto &id : known)
        ids.append(reinterpret_cast<const char *>(id.data()), 32);
    put_blob(msg, ids);
    BERTH_TRY(proc::write_all(to_agent, msg));
    ::close(to_agent);
    std::uint64_t reported = 0;
    for (;;) {
        auto type = proc::read_exact(from_agent, 1);
        if (!type) return tl::unexpected(type.error());
        switch ((*type)[0]) {
        case 'T': {
            auto b = proc::read_exact(from_agent, 16);
            if (!b) return tl::unexpected(b.error());
            sink.total(get<std::uint64_t>(*b, 0), get<std::uint64_t>(*b, 8));
            break;
        }
        case 'P': {
            auto b = proc::read_exact(from_agent, 8);
            if (!b) return tl::unexpected(b.error());
            auto done = get<std::uint64_t>(*b, 0); // a running total: pass on the increment
            if (done > reported) sink.progress(done - reported);
            reported = done;
            break;
        }
        case 'C': {
            auto c = read_chunk_body(from_agent);
            if (!c) return tl::unexpected(c.error());
            // Trust nothing from the wire: the chunk must hash to its id.
            auto raw = decompress(c->stored, c->flags, c->raw_len);
            if (!raw || req.ids(raw->data(), raw->size()) != c->id)
                return fail("a chunk from the machine failed its hash check", "retry the save");
            BERTH_TRY(sink.chunk(c->id, c->raw_len, c->flags, c->stored));
            break;
        }
        case 'E': {
            auto b = read_blob(from_agent);
            if (!b) return tl::unexpected(b.error());
            auto t = parse_tree(*b);
            if (!t || t->entries.size() != 1) return fail("bad entry from the machine");
            BERTH_TRY(sink.entry(t->entries[0]));
            break;
        }
        case 'X': {
            auto b = read_blob(from_agent);
            return fail("on the machine: " + (b ? *b : std::string("unknown error")));
        }
        case 'Z': {
            auto b = read_blob(from_agent);
            if (!b) return tl::unexpected(b.error());
            auto j = nlohmann::json::parse(*b, nullptr, false);
            SaveStats s;
            s.files = j.value("files", 0ull);
            s.dirs = j.value("dirs", 0ull);
            s.bytes = j.value("bytes", 0ull);
            s.bytes_read = j.value("bytes_read", 0ull);
            s.files_read = j.value("files_read", 0ull);
            s.new_chunks = j.value("new_chunks", 0ull);
            s.new_bytes = j.value("new_bytes", 0ull);
            s.stored_bytes = j.value("stored_bytes", 0ull);
            s.tree_id = j.value("tree", std::string());
            return s;
        }
        default:
            return fail(
                "unexpected record in the save stream (is berth the same version on the machine?)");
        }
    }
}

int agent_restore_stream(int in_fd, int out_fd) {
    auto line = read_line(in_fd);
    if (!line) return answer_error(out_fd, line.error());
    auto h = nlohmann::json::parse(*line, nullptr, false);
    auto tree_bytes = read_blob(in_fd);
    if (!h.is_object() || !tree_bytes) return answer_error(out_fd, Error{"bad restore request"});
    auto t = parse_tree(*tree_bytes);
    if (!t) return answer_error(out_fd, t.error());
    std::string tree_id = h.value("tree", std::string());
    std::string target = h.value("target", std::string("/"));
    auto ids = IdHasher::from_hex(h.value("id_key", std::string()));
    if (!ids) return answer_error(out_fd, ids.error());
    ChunkSource source = [&](const ChunkId &want) -> Result<std::string> {
        auto type = proc::read_exact(in_fd, 1);
        if (!type || (*type)[0] != 'C') return fail("the restore stream is out of order");
        auto c = read_chunk_body(in_fd);
        if (!c) return tl::unexpected(c.error());
        if (c->id != want) return fail("the restore stream sent the wrong chunk");
        auto raw = decompress(c->stored, c->flags, c->raw_len);
        if (!raw) return raw;
        if ((*ids)(raw->data(), raw->size()) != want)
            return fail("a chunk failed its hash check during restore");
        return raw;
    };
    auto st = restore_tree(*t, tree_id, target, source,
                           cache_file_for(h.value("repo_id", std::string()),
                                          h.value("cache_root", target),
                                          h.value("cache_paths", std::vector<std::string>{})),
                           nullptr);
    if (!st) return answer_error(out_fd, st.error());
    nlohmann::json j{
        {"files", st->files}, {"dirs", st->dirs}, {"symlinks", st->symlinks}, {"bytes", st->bytes}};
    std::string r(1, 'Z');
    put_blob(r, j.dump());
    return proc::write_all(out_fd, r) ? 0 : 1;
}

Result<RestoreStats> client_restore(int to_agent, int from_agent, const Tree &t,
                                    const std::string &tree_id, const std::string &target,
                                    const std::string &repo_id,
                                    const std::vector<std::string> &paths, const IdHasher &ids,
                                    const StoredChunk &get_chunk,
                                    const std::function<void(std::uint64_t)> &progress) {
    BERTH_TRY(check_tree(t));
    nlohmann::json h{{"target", target},        {"tree", tree_id},      {"repo_id", repo_id},
                     {"id_key", ids.key_hex()}, {"cache_root", target}, {"cache_paths", paths}};
    std::string msg = h.dump() + "\n";
    put_blob(msg, serialize(t));
    BERTH_TRY(proc::write_all(to_agent, msg));
    Result<> sent;
    for (const auto &e : t.entries) {
        if (e.type != EntryType::file) continue;
        for (const auto &c : e.chunks) {
            std::uint32_t raw_len = 0;
            auto stored = get_chunk(c, raw_len);
            if (!stored) {
                sent = tl::unexpected(stored.error());
                break;
            }
            sent =
                proc::write_all(to_agent, chunk_record(c, raw_len, stored->first, stored->second));
            if (!sent) break;
            if (progress) progress(raw_len);
        }
        if (!sent) break;
    }
    ::close(to_agent);
    auto type = proc::read_exact(from_agent, 1);
    if (!type) return tl::unexpected(sent ? type.error() : sent.error());
    auto b = read_blob(from_agent);
    if ((*type)[0] == 'X')
        return fail("on the machine: " + (b ? *b : std::string("unknown error")));
    if (!sent) return tl::unexpected(sent.error());
    if (!b) return tl::unexpected(b.error());
    auto j = nlohmann::json::parse(*b, nullptr, false);
    RestoreStats st;
    st.files = j.value("files", 0ull);
    st.dirs = j.value("dirs", 0ull);
    st.symlinks = j.value("symlinks", 0ull);
    st.bytes = j.value("bytes", 0ull);
    return st;
}

} // namespace berth::store
