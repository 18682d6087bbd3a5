#include "store/repository.hpp"

#include "core/paths.hpp"
#include "store/compress.hpp"
#include "util/crash.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/file.h>
#include <unistd.h>

namespace berth::store {

namespace stdfs = std::filesystem;

namespace {

// Packs of about 32 MiB: few files for the file system, small enough to write often.
// BERTH_PACK_BYTES overrides it (tests use small packs to crash between them).
std::size_t pack_target() {
    static const std::size_t v = [] {
        const char *e = std::getenv("BERTH_PACK_BYTES");
        return e && std::atol(e) > 0 ? static_cast<std::size_t>(std::atol(e))
                                     : std::size_t(32) << 20;
    }();
    return v;
}
constexpr char k_idx_magic[] = "BIDX1\n";
constexpr std::size_t k_idx_entry = 32 + 8 + 4 + 4 + 1;

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        (void)!::read(fd, raw.data(), raw.size());
        ::close(fd);
    }
    return str::hex(reinterpret_cast<const unsigned char *>(raw.data()), raw.size());
}

template <class T> void put(std::string &out, T v) {
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
}

} // namespace

stdfs::path default_repo() {
    return paths::data_home() / "berth" / "repo";
}

Repository::Repository(Repository &&o) noexcept
    : m_root(std::move(o.m_root)), m_id(std::move(o.m_id)), m_chunker(o.m_chunker),
      m_lock_fd(o.m_lock_fd), m_packs(std::move(o.m_packs)), m_index(std::move(o.m_index)),
      m_pack_buf(std::move(o.m_pack_buf)), m_pending(std::move(o.m_pending)),
      m_written(o.m_written), m_read_fd(o.m_read_fd), m_read_pack(o.m_read_pack) {
    o.m_read_fd = -1;
    o.m_lock_fd = -1;
}

Repository::~Repository() {
    if (m_read_fd >= 0) ::close(m_read_fd);
    if (m_lock_fd >= 0) ::close(m_lock_fd);
}

Result<Repository> Repository::open(const stdfs::path &root, bool create) {
    Repository r;
    r.m_root = fs::absolute_normal(root);
    auto cfg = r.m_root / "config.json";
    if (!stdfs::exists(cfg)) {
        if (!create)
            return fail("no berth repository at " + r.m_root.string(),
                        "save something to it first, or pass --repo DIR");
        std::error_code ec;
        if (stdfs::exists(r.m_root) && !stdfs::is_empty(r.m_root, ec))
            return fail(r.m_root.string() + " is not empty and not a berth repository",
                        "pass an empty or new directory as --repo");
        for (const char *d : {"", "data", "index", "trees", "snapshots"})
            BERTH_TRY(fs::make_dirs(r.m_root / d, 0700));
        nlohmann::json j{
            {"version", 1},
            {"id", random_hex(16)},
            {"chunker",
             {{"min", r.m_chunker.min}, {"avg", r.m_chunker.avg}, {"max", r.m_chunker.max}}}};
        BERTH_TRY(fs::write_file_atomic(cfg, j.dump(2) + "\n", 0600));
    }
    auto text = fs::read_file(cfg);
    if (!text) return tl::unexpected(text.error());
    try {
        auto j = nlohmann::json::parse(*text);
        if (j.at("version").get<int>() != 1)
            return fail("repository " + r.m_root.string() + " has format version " +
                            j.at("version").dump(),
                        "upgrade berth");
        r.m_id = j.at("id");
        r.m_chunker = {j.at("chunker").at("min"), j.at("chunker").at("avg"),
                       j.at("chunker").at("max")};
    } catch (const std::exception &e) {
        return fail("repository config " + cfg.string() + " is damaged: " + e.what());
    }
    BERTH_TRY(r.load_index());
    return r;
}

Result<> Repository::lock(bool exclusive) {
    auto path = m_root / "lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return fail_errno(path.string(), errno);
    if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        char buf[128] = {};
        (void)!::pread(fd, buf, sizeof buf - 1, 0);
        ::close(fd);
        return fail("repository " + m_root.string() + " is in use (" + str::trim(buf) + ")",
                    "wait for the other berth to finish; a killed one releases it by itself", 4);
    }
    char host[64] = {};
    ::gethostname(host, sizeof host - 1);
    std::string who = "pid " + std::to_string(::getpid()) + " on " + host;
    if (exclusive && ::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, who.data(), who.size(), 0);
    if (m_lock_fd >= 0) ::close(m_lock_fd);
    m_lock_fd = fd; // released at close, or by the kernel when this process dies
    return {};
}

stdfs::path Repository::pack_path(const std::string &pack_id) const {
    return m_root / "data" / pack_id.substr(0, 2) / pack_id;
}

Result<> Repository::load_index() {
    std::error_code ec;
    std::vector<stdfs::path> files;
    for (const auto &e : stdfs::directory_iterator(m_root / "index", ec))
        if (e.path().extension() == ".idx") files.push_back(e.path());
    if (ec) return fail(m_root.string() + "/index: " + ec.message());
    std::sort(files.begin(), files.end());
    for (const auto &f : files) {
        auto bytes = fs::read_file(f);
        if (!bytes) return tl::unexpected(bytes.error());
        if (bytes->compare(0, sizeof k_idx_magic - 1, k_idx_magic) != 0 ||
            (bytes->size() - (sizeof k_idx_magic - 1)) % k_idx_entry != 0)
            return fail("index file " + f.string() + " is damaged", "run `berth verify`");
        auto pack = static_cast<std::uint32_t>(m_packs.size());
        m_packs.push_back(f.stem());
        for (std::size_t p = sizeof k_idx_magic - 1; p < bytes->size(); p += k_idx_entry) {
            ChunkId id;
            Location l;
            l.pack = pack;
            std::memcpy(id.data(), bytes->data() + p, 32);
            std::memcpy(&l.offset, bytes->data() + p + 32, 8);
            std::memcpy(&l.stored_len, bytes->data() + p + 40, 4);
            std::memcpy(&l.raw_len, bytes->data() + p + 44, 4);
            std::memcpy(&l.flags, bytes->data() + p + 48, 1);
            m_index.emplace(id, l);
        }
    }
    return {};
}

std::vector<ChunkId> Repository::chunk_ids() const {
    std::vector<ChunkId> out;
    out.reserve(m_index.size());
    for (const auto &[id, l] : m_index)
        out.push_back(id);
    return out;
}

Result<> Repository::add(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                         std::string_view stored) {
    if (has(id)) return {}; // callers (the sinks) skip what this save already added
    m_pending.push_back(
        {id, m_pack_buf.size(), static_cast<std::uint32_t>(stored.size()), raw_len, flags});
    m_pack_buf.append(stored);
    if (m_pack_buf.size() >= pack_target()) return flush();
    return {};
}

Result<> Repository::sync_fs() {
    int fd = ::open(m_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail_errno(m_root.string(), errno);
    int rc = ::syncfs(fd);
    int e = errno;
    ::close(fd);
    if (rc != 0)
        return fail_errno("sync " + m_root.string(), e, "free space where the repository is");
    return {};
}

Result<> Repository::flush() {
    if (m_pending.empty()) return {};
    std::string pack_id = to_hex(sha256_id(m_pack_buf.data(), m_pack_buf.size()));
    auto pp = pack_path(pack_id);
    BERTH_TRY(fs::make_dirs(pp.parent_path(), 0700));
    auto w = fs::write_file_atomic(pp, m_pack_buf, 0600, false);
    if (!w) {
        w.error().fix = "free space where the repository is; what is saved so far is kept";
        return w;
    }
    crash_point("pack-written"); // a pack without its index: invisible, pruned later
    m_written += m_pack_buf.size();
    m_unsynced.push_back({pack_id, std::move(m_pending)});
    m_pack_buf.clear();
    m_pending.clear();
    if (m_unsynced.size() >= 8) return sync_batch();
    return {};
}

// One syncfs makes the batch's packs durable; only then are their indexes written, so a
// durable index never names data that is not on disk.
Result<> Repository::sync_batch() {
    if (m_unsynced.empty()) return {};
    BERTH_TRY(sync_fs());
    for (auto &u : m_unsynced) {
        std::string idx(k_idx_magic);
        for (const auto &p : u.entries) {
            idx.append(reinterpret_cast<const char *>(p.id.data()), 32);
            put(idx, p.offset);
            put(idx, p.stored_len);
            put(idx, p.raw_len);
            put(idx, p.flags);
        }
        BERTH_TRY(fs::write_file_atomic(m_root / "index" / (u.pack_id + ".idx"), idx, 0600, false));
        auto pack = static_cast<std::uint32_t>(m_packs.size());
        m_packs.push_back(u.pack_id);
        for (const auto &p : u.entries)
            m_index.emplace(p.id, Location{pack, p.offset, p.stored_len, p.raw_len, p.flags});
        crash_point("pack-indexed");
    }
    m_unsynced.clear();
    return {};
}

Result<> Repository::commit() {
    BERTH_TRY(flush());
    BERTH_TRY(sync_batch());
    return sync_fs(); // the indexes too, before a tree or snapshot names their chunks
}

Result<std::string> Repository::read(const ChunkId &id) {
    if (!m_index.count(id))
        for (const auto &p : m_pending)
            if (p.id == id)
                return decompress(std::string_view(m_pack_buf).substr(p.offset, p.stored_len),
                                  p.flags, p.raw_len);
    std::uint32_t raw_len = 0;
    auto stored = read_stored(id, raw_len);
    if (!stored) return tl::unexpected(stored.error());
    auto raw = decompress(stored->second, stored->first, raw_len);
    if (!raw) return raw;
    if (sha256_id(raw->data(), raw->size()) != id)
        return fail("chunk " + to_hex(id).substr(0, 16) + " in pack " +
                        m_packs[m_index.at(id).pack].substr(0, 16) + " is damaged",
                    "the repository's disk corrupted it; run `berth verify`");
    return raw;
}

Result<std::pair<std::uint8_t, std::string>> Repository::read_stored(const ChunkId &id,
                                                                     std::uint32_t &raw_len) {
    auto it = m_index.find(id);
    if (it == m_index.end())
        return fail("chunk " + to_hex(id).substr(0, 16) + " is missing from the repository",
                    "run `berth verify`");
    const Location &l = it->second;
    if (m_read_pack != l.pack) { // packs are read in runs: keep the last one open
        if (m_read_fd >= 0) ::close(m_read_fd);
        m_read_fd = ::open(pack_path(m_packs[l.pack]).c_str(), O_RDONLY | O_CLOEXEC);
        m_read_pack = l.pack;
        if (m_read_fd < 0) {
            m_read_pack = UINT32_MAX;
            return fail_errno("pack " + m_packs[l.pack], errno, "run `berth verify`");
        }
    }
    std::string stored(l.stored_len, '\0');
    if (::pread(m_read_fd, stored.data(), stored.size(), static_cast<off_t>(l.offset)) !=
        static_cast<ssize_t>(l.stored_len))
        return fail("pack " + m_packs[l.pack] + " is truncated", "run `berth verify`");
    raw_len = l.raw_len;
    return std::make_pair(l.flags, std::move(stored));
}

Result<std::string> Repository::put_tree(const Tree &t) {
    std::string bytes = serialize(t);
    std::string id = to_hex(sha256_id(bytes.data(), bytes.size()));
    auto path = m_root / "trees" / id;
    if (stdfs::exists(path)) return id;
    std::uint8_t flags = 0;
    std::string stored = compress(bytes, flags);
    std::string file(1, static_cast<char>(flags));
    file += stored;
    put(file, static_cast<std::uint64_t>(bytes.size()));
    BERTH_TRY(fs::write_file_atomic(path, file, 0600));
    return id;
}

Result<Tree> Repository::get_tree(const std::string &id) {
    if (id.size() != 64 || id.find_first_not_of("0123456789abcdef") != std::string::npos)
        return fail("bad tree id '" + id + "'");
    auto file = fs::read_file(m_root / "trees" / id);
    if (!file) return fail("tree " + id.substr(0, 16) + " is missing", "run `berth verify`");
    if (file->size() < 9) return fail("tree " + id.substr(0, 16) + " is damaged");
    std::uint64_t raw_len;
    std::memcpy(&raw_len, file->data() + file->size() - 8, 8);
    auto bytes =
        decompress(std::string_view(*file).substr(1, file->size() - 9),
                   static_cast<std::uint8_t>((*file)[0]), static_cast<std::size_t>(raw_len));
    if (!bytes) return tl::unexpected(bytes.error());
    if (to_hex(sha256_id(bytes->data(), bytes->size())) != id)
        return fail("tree " + id.substr(0, 16) + " is damaged", "run `berth verify`");
    return parse_tree(*bytes);
}

Result<> Repository::put_snapshot(const Snapshot &s) {
    crash_point("before-snapshot");
    return fs::write_file_atomic(m_root / "snapshots" / (s.id + ".json"), snapshot_json(s), 0600);
}

Result<std::vector<Snapshot>> Repository::snapshots() {
    std::vector<Snapshot> out;
    std::error_code ec;
    for (const auto &e : stdfs::directory_iterator(m_root / "snapshots", ec)) {
        if (e.path().extension() != ".json") continue;
        auto text = fs::read_file(e.path());
        if (!text) continue;
        auto s = parse_snapshot(*text);
        if (s) out.push_back(*s);
    }
    std::sort(out.begin(), out.end(), [](const Snapshot &a, const Snapshot &b) {
        return a.time < b.time || (a.time == b.time && a.id < b.id);
    });
    return out;
}

Result<Snapshot> Repository::find_snapshot(const std::string &ref) {
    auto all = snapshots();
    if (!all) return tl::unexpected(all.error());
    if (ref == "latest") {
        if (all->empty())
            return fail("the repository has no snapshots", "save one with `berth save`");
        return all->back();
    }
    std::vector<Snapshot> hits;
    for (const auto &s : *all)
        if (s.id.rfind(ref, 0) == 0) hits.push_back(s);
    if (hits.size() == 1) return hits[0];
    if (hits.empty())
        return fail("no snapshot '" + ref + "' in " + m_root.string(), "see `berth snapshots`");
    return fail("snapshot '" + ref + "' is ambiguous (" + std::to_string(hits.size()) + " match)",
                "give more of its id");
}

Result<> Repository::forget(const std::string &ref) {
    auto s = find_snapshot(ref);
    if (!s) return tl::unexpected(s.error());
    auto path = m_root / "snapshots" / (s->id + ".json");
    if (::unlink(path.c_str()) != 0) return fail_errno(path.string(), errno);
    return fs::fsync_dir(path.parent_path());
}

Result<VerifyReport> Repository::verify(const std::function<void(std::uint64_t)> &progress) {
    VerifyReport rep;
    auto snaps = snapshots();
    if (!snaps) return tl::unexpected(snaps.error());
    rep.snapshots = snaps->size();
    std::set<std::string> trees;
    for (const auto &s : *snaps)
        trees.insert(s.tree);
    for (const auto &t : trees) {
        auto tree = get_tree(t);
        if (!tree) {
            rep.problems.push_back(tree.error().what);
            continue;
        }
        ++rep.trees;
        for (const auto &e : tree->entries)
            for (const auto &c : e.chunks)
                if (!has(c))
                    rep.problems.push_back("chunk " + to_hex(c).substr(0, 16) + " of " + e.path +
                                           " is missing");
    }
    for (const auto &[id, l] : m_index) {
        auto raw = read(id);
        if (!raw)
            rep.problems.push_back(raw.error().what);
        else
            rep.bytes += raw->size();
        ++rep.chunks;
        if (progress) progress(l.raw_len);
    }
    return rep;
}

Result<PruneReport> Repository::prune() {
    PruneReport rep;
    auto snaps = snapshots();
    if (!snaps) return tl::unexpected(snaps.error());
    std::set<ChunkId> used;
    std::set<std::string> used_trees;
    for (const auto &s : *snaps) {
        auto t = get_tree(s.tree);
        if (!t) return fail("cannot prune: " + t.error().what, "run `berth verify` first");
        used_trees.insert(s.tree);
        for (const auto &e : t->entries)
            used.insert(e.chunks.begin(), e.chunks.end());
    }
    std::vector<std::uint64_t> live(m_packs.size(), 0), dead(m_packs.size(), 0);
    for (const auto &[id, l] : m_index)
        (used.count(id) ? live : dead)[l.pack] += l.stored_len;
    std::error_code ec;
    for (std::size_t p = 0; p < m_packs.size(); ++p) {
        if (live[p] == 0) {
            auto pp = pack_path(m_packs[p]);
            // The index goes first: a pack without an index is invisible and harmless.
            stdfs::remove(m_root / "index" / (m_packs[p] + ".idx"), ec);
            rep.bytes_freed += stdfs::file_size(pp, ec);
            stdfs::remove(pp, ec);
            ++rep.packs_removed;
        } else {
            rep.unused_bytes_kept += dead[p];
        }
    }
    // Packs no index names (a save killed between the two writes) and temp files.
    std::set<std::string> indexed(m_packs.begin(), m_packs.end());
    for (const auto &e : stdfs::recursive_directory_iterator(m_root / "data", ec)) {
        if (!e.is_regular_file()) continue;
        std::string n = e.path().filename();
        bool temp = n.find(".berth-tmp-") != std::string::npos;
        if (temp || !indexed.count(n)) {
            rep.bytes_freed += e.file_size(ec);
            stdfs::remove(e.path(), ec);
            ++rep.orphan_packs;
        }
    }
    for (const auto &e : stdfs::directory_iterator(m_root / "trees", ec))
        if (!used_trees.count(e.path().filename())) stdfs::remove(e.path(), ec);
    m_index.clear();
    m_packs.clear();
    BERTH_TRY(load_index());
    return rep;
}

} // namespace berth::store
