#include "store/save.hpp"

#include "core/paths.hpp"
#include "store/compress.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <dirent.h>
#include <fcntl.h>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace berth::store {

namespace stdfs = std::filesystem;

stdfs::path cache_dir() {
    if (const char *e = std::getenv("BERTH_CACHE_DIR"); e && *e == '/') return e;
    if (stdfs::is_directory("/storage/.berth")) return "/storage/.berth/cache";
    const char *x = std::getenv("XDG_CACHE_HOME");
    return (x && *x == '/' ? stdfs::path(x) : paths::home() / ".cache") / "berth";
}

stdfs::path cache_file_for(const std::string &repo_id, const stdfs::path &root,
                           const std::vector<std::string> &paths) {
    std::string key = repo_id + '\0' + root.string();
    for (const auto &p : paths)
        key += '\0' + p;
    return cache_dir() / "files" / to_hex(sha256_id(key.data(), key.size())).substr(0, 32);
}

namespace {

using InodeMap = std::unordered_map<std::string, std::uint64_t>;

constexpr char k_cache_magic[] = "BCACHE1\n";

InodeMap load_cache(const stdfs::path &file, const std::string &tree_id) {
    InodeMap m;
    auto bytes = fs::read_file(file);
    std::size_t head = sizeof k_cache_magic - 1;
    if (!bytes || bytes->size() < head + 64 || bytes->compare(0, head, k_cache_magic) != 0)
        return m;
    if (tree_id.empty() || bytes->compare(head, 64, tree_id) != 0)
        return m; // cache of another tree
    for (std::size_t p = head + 64; p + 12 <= bytes->size();) {
        std::uint64_t ino;
        std::uint32_t len;
        std::memcpy(&ino, bytes->data() + p, 8);
        std::memcpy(&len, bytes->data() + p + 8, 4);
        p += 12;
        if (p + len > bytes->size()) break;
        m.emplace(bytes->substr(p, len), ino);
        p += len;
    }
    return m;
}

void store_cache(const stdfs::path &file, const std::string &tree_id, const InodeMap &m) {
    if (file.empty()) return;
    std::string out(k_cache_magic);
    out += tree_id;
    for (const auto &[path, ino] : m) {
        out.append(reinterpret_cast<const char *>(&ino), 8);
        auto len = static_cast<std::uint32_t>(path.size());
        out.append(reinterpret_cast<const char *>(&len), 4);
        out += path;
    }
    if (fs::make_dirs(file.parent_path(), 0700)) (void)fs::write_file_atomic(file, out, 0600);
}

// Asks the kernel to read the next files of a directory (up to 48 MiB ahead) while this one
// is chunked and hashed: cold reads of many small files then overlap with the CPU work, as
// they would in a copy. Only a hint: opened non-blocking (a FIFO never blocks the walk).
struct ReadAhead {
    const stdfs::path &dir;
    const std::vector<std::string> &names;
    // Whether the walk will read this file (an unchanged one is not read, so not advised).
    std::function<bool(const std::string &name, const struct stat &)> will_read;
    std::size_t next = 0;    // the first name not advised yet
    std::uint64_t ahead = 0; // bytes advised beyond the current file
    std::vector<std::uint64_t> sizes;
    std::vector<struct stat> stats; // what the look-ahead saw, for the walk to reuse
    std::vector<bool> have;
    const struct stat *stat_of(std::size_t i) const {
        return i < have.size() && have[i] ? &stats[i] : nullptr;
    }
    void advise_past(std::size_t current) {
        if (sizes.size() < names.size()) {
            sizes.resize(names.size(), 0);
            stats.resize(names.size());
            have.resize(names.size(), false);
        }
        if (current > 0 && current - 1 < sizes.size()) ahead -= std::min(ahead, sizes[current - 1]);
        if (next <= current) next = current + 1;
        while (next < names.size() && ahead < (48u << 20)) {
            auto path = dir / names[next];
            struct stat &st = stats[next];
            have[next] = ::lstat(path.c_str(), &st) == 0;
            if (have[next] && S_ISREG(st.st_mode) && st.st_size > 0 && will_read(names[next], st)) {
                int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0) {
                    ::posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
                    ::close(fd);
                    sizes[next] = static_cast<std::uint64_t>(st.st_size);
                    ahead += sizes[next];
                }
            }
            ++next;
        }
    }
};

struct Walker {
    const SaveOptions &opt;
    SaveSink &sink;
    SaveStats stats;
    std::vector<Entry> entries;
    InodeMap inodes, parent_inodes;
    std::unordered_map<std::string, const Entry *> parent;
    // 16 MiB, allocated on the first file read and never zero-filled (an unchanged save never
    // needs it).
    struct Buf {
        std::unique_ptr<std::uint8_t[]> p;
        std::uint8_t *data() {
            if (!p) p.reset(new std::uint8_t[size()]);
            return p.get();
        }
        static constexpr std::size_t size() { return 16 << 20; }
    } buf;

    // Same size, mtime and inode as in the parent snapshot: its chunks are the parent's.
    bool unchanged(const std::string &rel, const struct stat &st) const {
        auto it = parent.find(rel);
        auto ino = parent_inodes.find(rel);
        std::int64_t mtime =
            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        return it != parent.end() && it->second->type == EntryType::file &&
               it->second->size == static_cast<std::uint64_t>(st.st_size) &&
               it->second->mtime_ns == mtime && ino != parent_inodes.end() &&
               ino->second == st.st_ino;
    }

    Result<> file(const std::string &rel, const stdfs::path &abs, const struct stat &st, Entry &e) {
        auto it = parent.find(rel);
        if (unchanged(rel, st)) {
            e.chunks = it->second->chunks; // unchanged: not read at all
            sink.progress(e.size);
            return {};
        }
        int fd = ::open(abs.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) return fail_errno(abs.string(), errno, "check its permissions");
        ++stats.files_read;
        std::size_t have = 0;
        std::uint64_t total = 0;
        bool eof = false;
        Result<> r;
        while (r) {
            while (!eof && have < Buf::size()) {
                ssize_t n = ::read(fd, buf.data() + have, Buf::size() - have);
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) {
                    r = fail_errno(abs.string(), errno);
                    break;
                }
                if (n == 0) eof = true;
                have += static_cast<std::size_t>(n);
                total += static_cast<std::uint64_t>(n);
                stats.bytes_read += static_cast<std::uint64_t>(n);
            }
            if (!r || have == 0) break;
            std::size_t off = 0;
            for (;;) {
                std::size_t cut = find_cut(buf.data() + off, have - off, eof, opt.chunker);
                if (cut == 0) break;
                r = emit(buf.data() + off, cut, e);
                if (!r) break;
                off += cut;
                if (off == have) break;
            }
            std::memmove(buf.data(), buf.data() + off, have - off);
            have -= off;
            if (eof && have == 0) break;
        }
        // The size is what the chunks hold: a file that grew or shrank since it was looked at
        // is recorded as it was read (and its mtime makes the next save read it again).
        if (r && total != e.size) {
            e.size = total;
            e.mtime_ns = 0;
        }
        ::close(fd);
        return r;
    }

    Result<> emit(const std::uint8_t *data, std::size_t n, Entry &e) {
        ChunkId id = opt.ids(data, n);
        e.chunks.push_back(id);
        if (!sink.has(id)) {
            ++stats.new_chunks;
            stats.new_bytes += n;
            BERTH_TRY(
                sink.new_chunk(id, std::string_view(reinterpret_cast<const char *>(data), n)));
        }
        sink.progress(n);
        return {};
    }

    Result<> walk(const std::string &rel, const struct stat *known = nullptr) {
        stdfs::path abs = rel.empty() ? opt.root : opt.root / rel;
        struct stat st {};
        if (known)
            st = *known; // the look-ahead's lstat, moments ago
        else if (::lstat(abs.c_str(), &st) != 0)
            return fail_errno(abs.string(), errno, "check the path");
        Entry e;
        e.path = rel;
        e.mode = st.st_mode & 07777;
        e.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
        e.uid = st.st_uid;
        e.gid = st.st_gid;
        if (S_ISREG(st.st_mode)) {
            e.type = EntryType::file;
            e.size = static_cast<std::uint64_t>(st.st_size);
            BERTH_TRY(file(rel, abs, st, e));
            inodes[rel] = st.st_ino;
            ++stats.files;
            stats.bytes += e.size;
        } else if (S_ISLNK(st.st_mode)) {
            e.type = EntryType::symlink;
            std::error_code ec;
            e.target = stdfs::read_symlink(abs, ec).string();
        } else if (S_ISDIR(st.st_mode)) {
            e.type = EntryType::dir;
            ++stats.dirs;
            DIR *d = ::opendir(abs.c_str());
            if (!d) return fail_errno(abs.string(), errno, "check its permissions");
            std::vector<std::string> names;
            while (dirent *de = ::readdir(d)) {
                std::string n = de->d_name;
                if (n != "." && n != "..") names.push_back(n);
            }
            ::closedir(d);
            std::sort(names.begin(), names.end());
            if (!rel.empty()) entries.push_back(e);
            ReadAhead ahead{abs, names, [&](const std::string &n, const struct stat &st) {
                                return !unchanged(rel.empty() ? n : rel + "/" + n, st);
                            }};
            for (std::size_t i = 0; i < names.size(); ++i) {
                ahead.advise_past(i);
                BERTH_TRY(walk(rel.empty() ? names[i] : rel + "/" + names[i], ahead.stat_of(i)));
            }
            return {};
        } else {
            return {}; // sockets, FIFOs, devices: no bytes to keep
        }
        if (!rel.empty()) BERTH_TRY(sink.entry(e));
        entries.push_back(std::move(e));
        return {};
    }
};

void pre_count(const stdfs::path &p, std::uint64_t &bytes, std::uint64_t &files) {
    std::error_code ec;
    if (stdfs::is_symlink(p, ec)) return;
    if (stdfs::is_regular_file(p, ec)) {
        bytes += stdfs::file_size(p, ec);
        ++files;
        return;
    }
    for (auto it = stdfs::recursive_directory_iterator(
             p, stdfs::directory_options::skip_permission_denied, ec);
         it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) break;
        if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
            bytes += it->file_size(ec);
            ++files;
        }
    }
}

} // namespace

Result<> SaveSink::new_chunk(const ChunkId &id, std::string_view raw) {
    std::uint8_t flags = 0;
    std::string stored = compress(raw, flags);
    m_stored += stored.size();
    return chunk(id, static_cast<std::uint32_t>(raw.size()), flags, stored);
}

Result<SaveStats> save_tree(const SaveOptions &opt, SaveSink &sink) {
    Walker w{opt, sink};
    if (opt.parent) {
        for (const auto &e : opt.parent->entries)
            w.parent.emplace(e.path, &e);
        w.parent_inodes = load_cache(opt.cache_file, opt.parent_tree_id);
    }
    std::uint64_t total = 0, files = 0;
    std::vector<std::string> paths = opt.paths.empty() ? std::vector<std::string>{""} : opt.paths;
    if (sink.wants_total()) {
        for (const auto &p : paths)
            pre_count(p.empty() ? opt.root : opt.root / p, total, files);
        sink.total(total, files);
    }
    for (const auto &p : paths) {
        if (!p.empty()) {
            // The parents of a saved path are directories in the tree, so a restore recreates them.
            std::string acc;
            for (const auto &part : str::split(p, '/')) {
                acc = acc.empty() ? part : acc + "/" + part;
                if (acc == p) break;
                struct stat st {};
                if (::stat((opt.root / acc).c_str(), &st) == 0) {
                    Entry d{acc,
                            EntryType::dir,
                            static_cast<std::uint32_t>(st.st_mode & 07777),
                            static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                                st.st_mtim.tv_nsec,
                            0,
                            st.st_uid,
                            st.st_gid,
                            {},
                            {}};
                    w.entries.push_back(d);
                }
            }
        }
        auto r = w.walk(p);
        if (!r) {
            (void)sink.finish();
            return tl::unexpected(r.error());
        }
    }
    BERTH_TRY(sink.finish());
    w.stats.stored_bytes = sink.stored_bytes();
    // Directory entries go to the sink after the walk (their mtimes were read before children).
    for (const auto &e : w.entries)
        if (e.type == EntryType::dir) BERTH_TRY(sink.entry(e));
    auto tree = finish_tree(std::move(w.entries));
    if (!tree) return tl::unexpected(tree.error());
    std::string bytes = serialize(*tree);
    w.stats.tree_id = to_hex(opt.ids(bytes));
    store_cache(opt.cache_file, w.stats.tree_id, w.inodes);
    return w.stats;
}

Result<Tree> finish_tree(std::vector<Entry> entries) {
    std::sort(entries.begin(), entries.end(),
              [](const Entry &a, const Entry &b) { return a.path < b.path; });
    entries.erase(std::unique(entries.begin(), entries.end(),
                              [](const Entry &a, const Entry &b) { return a.path == b.path; }),
                  entries.end());
    Tree t{std::move(entries)};
    BERTH_TRY(check_tree(t));
    return t;
}

// A tree is checked whole before anything is written: every path relative and clean, no
// path twice, nothing beneath a symlink (a crafted tree's `l -> /etc` plus `l/passwd`). A
// symlink's target is data, stored and restored as it is, wherever it points (the seed's own
// `/notebooks/storage -> /storage`, a venv's absolute links): restore never follows one.
Result<> check_tree(const Tree &t) {
    std::set<std::string> links;
    std::string prev;
    for (std::size_t i = 0; i < t.entries.size(); ++i) {
        const auto &e = t.entries[i];
        BERTH_TRY(check_entry_path(e.path));
        if (i > 0 && e.path <= prev)
            return fail("unsafe tree in snapshot: '" + e.path + "' is out of order or repeated",
                        "the repository may be tampered with");
        prev = e.path;
        if (e.type == EntryType::symlink) {
            if (e.target.empty() || e.target.find('\0') != std::string::npos)
                return fail("unsafe symlink in snapshot: '" + e.path + "' has no target",
                            "the repository may be tampered with");
            links.insert(e.path);
        }
        // Any ancestor that is a link? (Ancestors sort before their descendants.)
        for (auto pos = e.path.find('/'); pos != std::string::npos; pos = e.path.find('/', pos + 1))
            if (links.count(e.path.substr(0, pos)))
                return fail("unsafe tree in snapshot: '" + e.path + "' lies beneath the symlink '" +
                                e.path.substr(0, pos) + "'",
                            "the repository may be tampered with");
    }
    return {};
}

namespace {

// Opens (creating as needed) the directory for rel's parent under rootfd, refusing symlinks.
Result<int> open_parent(int rootfd, const std::string &rel, const stdfs::path &target) {
    auto parts = str::split(rel, '/');
    parts.pop_back();
    int fd = ::dup(rootfd);
    for (const auto &p : parts) {
        if (::mkdirat(fd, p.c_str(), 0755) != 0 && errno != EEXIST) {
            int e = errno;
            ::close(fd);
            return fail_errno((target / rel).parent_path().string(), e);
        }
        int next = ::openat(fd, p.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int e = errno;
        ::close(fd);
        if (next < 0)
            return fail_errno("refusing to restore through " +
                                  (target / rel).parent_path().string() +
                                  " (not a plain directory)",
                              e);
        fd = next;
    }
    return fd;
}

std::string base_name(const std::string &rel) {
    auto pos = rel.rfind('/');
    return pos == std::string::npos ? rel : rel.substr(pos + 1);
}

Result<> write_file(int dirfd, const Entry &e, const stdfs::path &target, const ChunkSource &source,
                    const std::function<void(std::uint64_t)> &progress) {
    std::string name = base_name(e.path);
    std::string tmp = "." + name + ".berth-tmp";
    ::unlinkat(dirfd, tmp.c_str(), 0);
    int fd =
        ::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) return fail_errno((target / e.path).string(), errno);
    Result<> r;
    std::uint64_t written = 0;
    for (const auto &c : e.chunks) {
        auto data = source(c); // checked against its id by the source
        if (!data) {
            r = tl::unexpected(data.error());
            break;
        }
        std::string_view v = *data;
        while (!v.empty() && r) {
            ssize_t n = ::write(fd, v.data(), v.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0)
                r = fail_errno((target / e.path).string(), errno,
                               "free space at the restore target; nothing was left half-written");
            else
                v.remove_prefix(static_cast<std::size_t>(n));
        }
        written += data->size();
        if (progress) progress(data->size());
    }
    if (r && written != e.size)
        r = fail((target / e.path).string() + ": restored size differs from the snapshot");
    if (r) ::fchown(fd, e.uid, e.gid);
    if (r && ::fchmod(fd, e.mode) != 0) r = fail_errno((target / e.path).string(), errno);
    struct timespec ts[2] = {
        {0, UTIME_OMIT},
        {static_cast<time_t>(e.mtime_ns / 1000000000), static_cast<long>(e.mtime_ns % 1000000000)}};
    if (r && ::futimens(fd, ts) != 0) r = fail_errno((target / e.path).string(), errno);
    ::close(fd);
    if (r && ::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0)
        r = fail_errno((target / e.path).string(), errno);
    if (!r) ::unlinkat(dirfd, tmp.c_str(), 0);
    return r;
}

} // namespace

namespace {

// Reads (and checks) the chunks of a restore ahead of the writer, in the order the writer
// needs them, on a second thread: reading packs, decompressing and hashing overlap with
// writing files. At most 64 MiB wait in between.
class Prefetcher {
public:
    Prefetcher(const Tree &t, const ChunkSource &source) : m_source(source) {
        for (const auto &e : t.entries)
            if (e.type == EntryType::file)
                for (const auto &c : e.chunks)
                    m_order.push_back(&c);
        m_thread = std::thread([this] { run(); });
    }
    ~Prefetcher() {
        {
            std::lock_guard lk(m_mu);
            m_stop = true;
        }
        m_space.notify_all();
        if (m_thread.joinable()) m_thread.join();
    }
    // The next chunk, which must be `id` (the writer asks in the same order).
    Result<std::string> next(const ChunkId &id) {
        std::unique_lock lk(m_mu);
        m_ready.wait(lk, [&] { return !m_queue.empty(); });
        auto r = std::move(m_queue.front());
        m_queue.pop_front();
        if (r) m_bytes -= r->size();
        m_space.notify_one();
        if (r && m_taken < m_order.size() && *m_order[m_taken] != id)
            r = fail("restore read its chunks out of order (a bug)");
        ++m_taken;
        return r;
    }

private:
    void run() {
        for (const ChunkId *c : m_order) {
            auto r = m_source(*c);
            std::unique_lock lk(m_mu);
            m_space.wait(lk, [&] { return m_bytes < (64u << 20) || m_stop; });
            if (m_stop) return;
            bool failed = !r;
            if (r) m_bytes += r->size();
            m_queue.push_back(std::move(r));
            m_ready.notify_one();
            if (failed) return; // the writer stops at the first error
        }
    }
    const ChunkSource &m_source;
    std::vector<const ChunkId *> m_order;
    std::size_t m_taken = 0;
    std::mutex m_mu;
    std::condition_variable m_ready, m_space;
    std::deque<Result<std::string>> m_queue;
    std::size_t m_bytes = 0;
    bool m_stop = false;
    std::thread m_thread;
};

} // namespace

Result<RestoreStats> restore_tree(const Tree &t, const std::string &tree_id,
                                  const stdfs::path &target, const ChunkSource &source,
                                  const stdfs::path &cache_file,
                                  const std::function<void(std::uint64_t)> &progress) {
    BERTH_TRY(check_tree(t)); // before anything is written
    BERTH_TRY(fs::make_dirs(target, 0755));
    int rootfd = ::open(target.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) return fail_errno(target.string(), errno);
    RestoreStats st;
    InodeMap inodes;
    Result<> r;
    std::vector<const Entry *> dirs, links;
    Prefetcher ahead(t, source);
    ChunkSource next = [&ahead](const ChunkId &id) { return ahead.next(id); };
    for (const auto &e : t.entries) {
        if (e.type == EntryType::dir) {
            dirs.push_back(&e);
            auto pfd = open_parent(rootfd, e.path + "/x", target);
            if (!pfd) {
                r = tl::unexpected(pfd.error());
                break;
            }
            ::close(*pfd);
            ++st.dirs;
            continue;
        }
        if (e.type == EntryType::symlink) {
            links.push_back(&e);
            continue;
        }
        auto pfd = open_parent(rootfd, e.path, target);
        if (!pfd) {
            r = tl::unexpected(pfd.error());
            break;
        }
        r = write_file(*pfd, e, target, next, progress);
        struct stat sst {};
        if (r && ::fstatat(*pfd, base_name(e.path).c_str(), &sst, AT_SYMLINK_NOFOLLOW) == 0)
            inodes[e.path] = sst.st_ino;
        ::close(*pfd);
        if (!r) break;
        ++st.files;
        st.bytes += e.size;
    }
    for (std::size_t i = 0; r && i < links.size(); ++i) { // last: nothing is written through them
        auto pfd = open_parent(rootfd, links[i]->path, target);
        if (!pfd) {
            r = tl::unexpected(pfd.error());
            break;
        }
        std::string name = base_name(links[i]->path);
        ::unlinkat(*pfd, name.c_str(), 0);
        if (::symlinkat(links[i]->target.c_str(), *pfd, name.c_str()) != 0)
            r = fail_errno((target / links[i]->path).string(), errno);
        ::close(*pfd);
        ++st.symlinks;
    }
    for (auto it = dirs.rbegin(); r && it != dirs.rend(); ++it) { // deepest first: mtimes stick
        const Entry &e = **it;
        // The directory itself, opened without following a link: its metadata is set through
        // its own descriptor, never through a path.
        auto dfd = open_parent(rootfd, e.path + "/x", target);
        if (!dfd) continue;
        (void)!::fchown(*dfd, e.uid, e.gid);
        ::fchmod(*dfd, e.mode & 07777);
        struct timespec ts[2] = {{0, UTIME_OMIT},
                                 {static_cast<time_t>(e.mtime_ns / 1000000000),
                                  static_cast<long>(e.mtime_ns % 1000000000)}};
        ::futimens(*dfd, ts);
        ::close(*dfd);
    }
    ::syncfs(rootfd);
    ::close(rootfd);
    if (!r) return tl::unexpected(r.error());
    store_cache(cache_file, tree_id, inodes);
    return st;
}

} // namespace berth::store
