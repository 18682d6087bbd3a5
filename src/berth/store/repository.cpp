#include "store/repository.hpp"

#include "core/paths.hpp"
#include "store/compress.hpp"
#include "util/crash.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp" // random_hex (getrandom): pack names, repository ids
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

template <class T> void put(std::string &out, T v) {
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
}

} // namespace

stdfs::path default_repo() {
    return paths::data_home() / "berth" / "repo";
}

Repository::Repository(Repository &&o) noexcept
    : m_root(std::move(o.m_root)), m_id(std::move(o.m_id)), m_chunker(o.m_chunker),
      m_lock_fd(o.m_lock_fd), m_packs(std::move(o.m_packs)), m_damaged(std::move(o.m_damaged)),
      m_index(std::move(o.m_index)), m_pack_buf(std::move(o.m_pack_buf)),
      m_pending(std::move(o.m_pending)), m_unsynced(std::move(o.m_unsynced)),
      m_written(o.m_written), m_batch_packs(o.m_batch_packs), m_read_fd(o.m_read_fd),
      m_read_pack(o.m_read_pack) {
    o.m_read_fd = -1;
    o.m_lock_fd = -1;
}

Repository::~Repository() {
    if (m_read_fd >= 0) ::close(m_read_fd);
    if (m_lock_fd >= 0) ::close(m_lock_fd);
}

namespace {

// Builds a new repository aside (ROOT.berth-init-<random>) and renames it into place, so a
// kill at any instant leaves either no repository or a whole one, and concurrent first saves
// converge: rename(2) onto an empty directory succeeds once; the losers find the winner's.
Result<> create_repository(const stdfs::path &root, const ChunkerParams &chunker) {
    std::error_code ec;
    if (stdfs::exists(root / "config.json", ec)) return {};
    // What an older berth killed mid-creation left: empty skeleton directories and nothing
    // else. Those (and only empty ones) are removed; anything else is refused below.
    if (stdfs::is_directory(root, ec)) {
        bool skeleton = true;
        for (const auto &e : stdfs::directory_iterator(root, ec)) {
            std::string n = e.path().filename();
            bool known = n == "data" || n == "index" || n == "trees" || n == "snapshots";
            skeleton = skeleton && known && e.is_directory(ec) && stdfs::is_empty(e.path(), ec);
        }
        if (skeleton && !ec)
            for (const char *d : {"data", "index", "trees", "snapshots"})
                ::rmdir((root / d).c_str());
    }
    if (stdfs::exists(root, ec) && !stdfs::is_empty(root, ec)) {
        return fail(root.string() + " is not empty and not a berth repository",
                    "pass an empty or new directory as --repo");
    }
    BERTH_TRY(fs::make_dirs(root.parent_path(), 0700));
    std::string prefix = "." + root.filename().string() + ".berth-init-";
    auto tmp = root.parent_path() / (prefix + random_hex(6));
    BERTH_TRY(fs::make_dirs(tmp, 0700));
    // Held while this creator works, released by the kernel if it dies: a sibling whose lock
    // can be taken was left by a killed creator and is removed below.
    int held = ::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (held >= 0) ::flock(held, LOCK_EX);
    for (const char *d : {"data", "index", "trees", "snapshots"})
        BERTH_TRY(fs::make_dirs(tmp / d, 0700));
    nlohmann::json j{
        {"version", 1},
        {"id", random_hex(16)},
        {"chunker", {{"min", chunker.min}, {"avg", chunker.avg}, {"max", chunker.max}}}};
    auto w = fs::write_file_atomic(tmp / "config.json", j.dump(2) + "\n", 0600);
    if (w) w = fs::fsync_dir(tmp);
    crash_point("repo-prepared");
    if (w && ::rename(tmp.c_str(), root.c_str()) != 0) {
        int e = errno;
        if (e != ENOTEMPTY && e != EEXIST) w = fail_errno(root.string(), e);
        // ENOTEMPTY/EEXIST: another berth created it first; use theirs.
    }
    stdfs::remove_all(tmp, ec); // ours, if it lost (or failed); never the repository
    if (held >= 0) ::close(held);
    // Siblings killed creators left behind (their lock is free).
    for (const auto &e : stdfs::directory_iterator(root.parent_path(), ec)) {
        std::string n = e.path().filename();
        if (n.rfind(prefix, 0) != 0) continue;
        int fd = ::open(e.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) continue;
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0) stdfs::remove_all(e.path(), ec);
        ::close(fd);
    }
    BERTH_TRY(w);
    BERTH_TRY(fs::fsync_dir(root.parent_path()));
    if (!stdfs::exists(root / "config.json", ec))
        return fail(root.string() + " is not empty and not a berth repository",
                    "pass an empty or new directory as --repo");
    return {};
}

// The repository's parameters, validated: a damaged or crafted config is an error naming the
// file, never a chunker that spins or a huge allocation.
Result<> read_config(const stdfs::path &cfg, std::string &id, ChunkerParams &chunker) {
    auto text = fs::read_file(cfg);
    if (!text) return tl::unexpected(text.error());
    auto bad = [&](const std::string &why) {
        return fail("repository config " + cfg.string() + " is damaged: " + why,
                    "restore it from a copy; berth will not guess its parameters");
    };
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_object()) return bad("not a JSON object");
    if (!j.contains("version") || !j["version"].is_number_integer()) return bad("no version");
    if (j["version"].get<long long>() != 1)
        return fail("repository " + cfg.parent_path().string() + " has format version " +
                        j["version"].dump(),
                    "upgrade berth");
    if (!j.contains("id") || !j["id"].is_string() || !is_hex(j["id"].get<std::string>(), 32))
        return bad("bad id");
    id = j["id"].get<std::string>();
    if (!j.contains("chunker") || !j["chunker"].is_object()) return bad("no chunker");
    const auto &c = j["chunker"];
    for (const char *k : {"min", "avg", "max"})
        if (!c.contains(k) || !c[k].is_number_unsigned()) return bad(std::string("chunker ") + k);
    chunker = {c["min"].get<std::size_t>(), c["avg"].get<std::size_t>(),
               c["max"].get<std::size_t>()};
    if (chunker.min < 4096 || chunker.min > chunker.avg || chunker.avg > chunker.max ||
        chunker.max > k_max_chunk || (chunker.avg & (chunker.avg - 1)) != 0)
        return bad("chunker sizes must be 4 KiB <= min <= avg <= max <= 64 MiB, avg a power of 2");
    return {};
}

} // namespace

Result<Repository> Repository::open(const stdfs::path &root, bool create) {
    Repository r;
    r.m_root = fs::absolute_normal(root);
    auto cfg = r.m_root / "config.json";
    if (!stdfs::exists(cfg)) {
        if (!create)
            return fail("no berth repository at " + r.m_root.string(),
                        "save something to it first, or pass --repo DIR");
        BERTH_TRY(create_repository(r.m_root, r.m_chunker));
    }
    BERTH_TRY(read_config(cfg, r.m_id, r.m_chunker));
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
    // A damaged index is set aside and reported (verify, prune), not fatal: its chunks are
    // simply unknown, so a save sends them again.
    for (const auto &f : files) {
        std::string name = f.stem();
        auto bytes = fs::read_file(f);
        std::string why;
        if (!is_hex(name, 64))
            why = "its name is not a pack id";
        else if (!bytes)
            why = bytes.error().what;
        else if (bytes->size() < sizeof k_idx_magic - 1 ||
                 bytes->compare(0, sizeof k_idx_magic - 1, k_idx_magic) != 0 ||
                 (bytes->size() - (sizeof k_idx_magic - 1)) % k_idx_entry != 0)
            why = "not a berth index";
        std::vector<std::pair<ChunkId, Location>> entries;
        auto pack = static_cast<std::uint32_t>(m_packs.size());
        for (std::size_t p = sizeof k_idx_magic - 1; why.empty() && p < bytes->size();
             p += k_idx_entry) {
            ChunkId id;
            Location l;
            l.pack = pack;
            std::memcpy(id.data(), bytes->data() + p, 32);
            std::memcpy(&l.offset, bytes->data() + p + 32, 8);
            std::memcpy(&l.stored_len, bytes->data() + p + 40, 4);
            std::memcpy(&l.raw_len, bytes->data() + p + 44, 4);
            std::memcpy(&l.flags, bytes->data() + p + 48, 1);
            if (l.raw_len > k_max_chunk || l.stored_len > k_max_chunk + (1u << 20) || l.flags > 1 ||
                l.offset > (std::uint64_t(1) << 40))
                why = "an entry is out of bounds";
            entries.emplace_back(id, l);
        }
        if (!why.empty()) {
            m_damaged.push_back("index file " + f.string() + " is damaged (" + why + ")");
            continue;
        }
        m_packs.push_back(name);
        for (const auto &[id, l] : entries)
            m_index.emplace(id, l);
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

Result<std::size_t> Repository::add_plain(const ChunkId &id, std::string_view raw) {
    if (has(id)) return std::size_t(0);
    if (m_pack_buf.capacity() < pack_target())
        m_pack_buf.reserve(pack_target() + (4u << 20)); // one buffer for every pack: no faults
    std::uint64_t offset = m_pack_buf.size();
    std::uint8_t flags = 0;
    std::size_t stored = compress_append(raw, flags, m_pack_buf);
    m_pending.push_back({id, offset, static_cast<std::uint32_t>(stored),
                         static_cast<std::uint32_t>(raw.size()), flags});
    if (m_pack_buf.size() >= pack_target()) BERTH_TRY(flush());
    return stored;
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
    // A random name: hashing 32 MiB again would cost a second SHA-256 pass over everything
    // saved, and every chunk in it is checked against its own id on every read anyway.
    std::string pack_id = random_hex(32);
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
    if (m_unsynced.size() >= m_batch_packs) return sync_batch();
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
    return RepoStore::read(id);
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
    if (raw_len > k_max_tree) return fail("tree " + id.substr(0, 16) + " is damaged (size)");
    auto bytes = decompress(std::string_view(*file).substr(1, file->size() - 9),
                            static_cast<std::uint8_t>((*file)[0]),
                            static_cast<std::size_t>(raw_len), k_max_tree);
    if (!bytes)
        return fail("tree " + id.substr(0, 16) + " is damaged (" + bytes.error().what + ")",
                    "run `berth verify`");
    if (to_hex(sha256_id(bytes->data(), bytes->size())) != id)
        return fail("tree " + id.substr(0, 16) + " is damaged", "run `berth verify`");
    auto t = parse_tree(*bytes);
    if (!t) return fail("tree " + id.substr(0, 16) + ": " + t.error().what, "run `berth verify`");
    return t;
}

Result<> Repository::put_snapshot(const Snapshot &s) {
    crash_point("before-snapshot");
    return fs::write_file_atomic(m_root / "snapshots" / (s.id + ".json"), snapshot_json(s), 0600);
}

SnapshotScan Repository::scan_snapshots() {
    SnapshotScan out;
    std::error_code ec;
    for (const auto &e : stdfs::directory_iterator(m_root / "snapshots", ec)) {
        std::string name = e.path().filename();
        if (name.size() < 6 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
        std::string stem = name.substr(0, name.size() - 5);
        if (!is_hex(stem, 16)) {
            if (name.find(".berth-tmp") == std::string::npos)
                out.damaged.push_back({stem, "snapshot file " + e.path().string() +
                                                 " does not have a snapshot id for a name"});
            continue;
        }
        auto text = fs::read_file(e.path());
        auto s = text ? parse_snapshot(*text) : Result<Snapshot>(tl::unexpected(text.error()));
        if (s && s->id != stem)
            s = fail("snapshot file is damaged: it says it is " + s->id.substr(0, 16));
        if (!s) {
            out.damaged.push_back(
                {stem, "snapshot " + stem + " (" + e.path().string() + "): " + s.error().what});
            continue;
        }
        out.good.push_back(*s);
    }
    if (ec) out.damaged.push_back({"", (m_root / "snapshots").string() + ": " + ec.message()});
    std::sort(out.good.begin(), out.good.end(), [](const Snapshot &a, const Snapshot &b) {
        return a.time < b.time || (a.time == b.time && a.id < b.id);
    });
    return out;
}

Result<std::vector<Snapshot>> Repository::snapshots() {
    auto scan = scan_snapshots();
    if (!scan.damaged.empty())
        return fail(scan.damaged.front().second,
                    "`berth verify` lists the damage; `berth forget " +
                        (scan.damaged.front().first.empty() ? std::string("ID")
                                                            : scan.damaged.front().first) +
                        "` removes a damaged snapshot");
    return scan.good;
}

Result<Snapshot> Repository::find_snapshot(const std::string &ref) {
    if (ref == "latest") {
        // The newest snapshot cannot be known while one is unreadable: refuse, never restore
        // an older one quietly.
        auto all = snapshots();
        if (!all) return tl::unexpected(all.error());
        if (all->empty())
            return fail("the repository has no snapshots", "save one with `berth save`");
        return all->back();
    }
    if (ref.empty() || ref.size() > 16 ||
        ref.find_first_not_of("0123456789abcdef") != std::string::npos)
        return fail("bad snapshot id '" + ref + "'", "ids are hex; see `berth snapshots`", 2);
    auto scan = scan_snapshots();
    std::vector<Snapshot> hits;
    for (const auto &s : scan.good)
        if (s.id.rfind(ref, 0) == 0) hits.push_back(s);
    for (const auto &[id, why] : scan.damaged)
        if (!id.empty() && id.rfind(ref, 0) == 0)
            return fail(why, "`berth forget " + id + "` removes it");
    if (hits.size() == 1) return hits[0];
    if (hits.empty())
        return fail("no snapshot '" + ref + "' in " + m_root.string(), "see `berth snapshots`");
    return fail("snapshot '" + ref + "' is ambiguous (" + std::to_string(hits.size()) + " match)",
                "give more of its id");
}

Result<std::string> Repository::forget(const std::string &ref) {
    // By the file's own name (validated hex), damaged snapshots included; never by an id read
    // from inside a file.
    if (ref.empty() || ref.size() > 16 ||
        ref.find_first_not_of("0123456789abcdef") != std::string::npos)
        return fail("bad snapshot id '" + ref + "'", "ids are hex; see `berth snapshots`", 2);
    auto scan = scan_snapshots();
    std::vector<std::string> hits;
    for (const auto &s : scan.good)
        if (s.id.rfind(ref, 0) == 0) hits.push_back(s.id);
    for (const auto &[id, why] : scan.damaged)
        if (!id.empty() && id.rfind(ref, 0) == 0) hits.push_back(id);
    if (hits.empty())
        return fail("no snapshot '" + ref + "' in " + m_root.string(), "see `berth snapshots`");
    if (hits.size() > 1)
        return fail("snapshot '" + ref + "' is ambiguous (" + std::to_string(hits.size()) +
                        " match)",
                    "give more of its id");
    auto path = m_root / "snapshots" / (hits[0] + ".json");
    if (::unlink(path.c_str()) != 0) return fail_errno(path.string(), errno);
    BERTH_TRY(fs::fsync_dir(path.parent_path()));
    return hits[0];
}

Result<VerifyReport> Repository::verify(const std::function<void(std::uint64_t)> &progress) {
    VerifyReport rep;
    auto scan = scan_snapshots();
    for (const auto &d : scan.damaged)
        rep.problems.push_back(d.second);
    for (const auto &d : m_damaged)
        rep.problems.push_back(d);
    auto snaps = std::optional<std::vector<Snapshot>>(scan.good);
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
    // Nothing is deleted while anything is unreadable: a damaged snapshot's data looks unused,
    // and a damaged index's pack looks like an orphan.
    if (!m_damaged.empty())
        return fail("cannot prune: " + m_damaged.front(),
                    "nothing was deleted; restore the file or remove it by hand after `berth "
                    "verify`");
    auto snaps = snapshots();
    if (!snaps)
        return fail("cannot prune: " + snaps.error().what,
                    "nothing was deleted; " + snaps.error().fix);
    std::set<ChunkId> used;
    std::set<std::string> used_trees;
    for (const auto &s : *snaps) {
        auto t = get_tree(s.tree);
        if (!t)
            return fail("cannot prune: " + t.error().what,
                        "nothing was deleted; run `berth verify`");
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
    m_damaged.clear();
    BERTH_TRY(load_index());
    return rep;
}

} // namespace berth::store
