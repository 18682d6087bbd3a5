#include "util/tree.hpp"

#include "util/fs.hpp"
#include "util/hash.hpp"

#include <algorithm>
#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace berth::tree {

namespace {

Result<std::vector<std::string>> list_dir(const stdfs::path &dir) {
    DIR *d = ::opendir(dir.c_str());
    if (!d) return fail_errno(dir.string(), errno);
    std::vector<std::string> names;
    while (dirent *e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != "..") names.push_back(std::move(n));
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    return names;
}

std::string join_rel(const std::string &rel, const std::string &name) {
    return rel.empty() ? name : rel + "/" + name;
}

std::int64_t mtime_ns(const struct stat &st) {
    return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

Kind kind_of(mode_t m) {
    if (S_ISREG(m)) return Kind::file;
    if (S_ISDIR(m)) return Kind::dir;
    if (S_ISLNK(m)) return Kind::symlink;
    return Kind::other;
}

Result<std::string> read_link(const stdfs::path &p) {
    std::string buf(4096, '\0');
    ssize_t n = ::readlink(p.c_str(), buf.data(), buf.size());
    if (n < 0) return fail_errno(p.string(), errno);
    buf.resize(static_cast<std::size_t>(n));
    return buf;
}

// Walks root depth-first (directories before their contents), calling fn for each entry.
template <class Fn> Result<> walk(const stdfs::path &root, const std::string &rel, Fn &&fn) {
    stdfs::path p = rel.empty() ? root : root / rel;
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return fail_errno(p.string(), errno);
    BERTH_TRY(fn(rel, p, st));
    if (!S_ISDIR(st.st_mode)) return {};
    auto names = list_dir(p);
    if (!names) return tl::unexpected(names.error());
    for (const auto &n : *names)
        BERTH_TRY(walk(root, join_rel(rel, n), fn));
    return {};
}

bool same_version(const struct stat &a, const struct stat &b) {
    return a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec &&
           a.st_mtim.tv_nsec == b.st_mtim.tv_nsec;
}

Result<std::string> copy_file(const stdfs::path &src, const stdfs::path &dst, const struct stat &st,
                              const CopyOptions &opt) {
    int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0) return fail_errno(src.string(), errno);
    int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        int e = errno;
        ::close(in);
        return fail_errno(dst.string(), e);
    }
    Sha256 h;
    static thread_local std::vector<char> buf(1 << 20);
    Result<> r;
    for (;;) {
        ssize_t n = ::read(in, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            r = fail_errno(src.string(), errno);
            break;
        }
        if (n == 0) break;
        h.update(buf.data(), static_cast<std::size_t>(n));
        for (ssize_t off = 0; off < n;) {
            ssize_t w = ::write(out, buf.data() + off, static_cast<std::size_t>(n - off));
            if (w < 0 && errno == EINTR) continue;
            if (w < 0) {
                r = fail_errno(dst.string(), errno);
                break;
            }
            off += w;
        }
        if (!r) break;
        if (opt.on_bytes) opt.on_bytes(static_cast<std::uint64_t>(n));
    }
    struct stat after {};
    if (r && ::fstat(in, &after) == 0 && !same_version(st, after))
        r = fail(src.string() + " changed while it was being copied", "rerun when it is quiet");
    if (r && ::fchmod(out, st.st_mode & 07777) != 0) r = fail_errno(dst.string(), errno);
    if (r && opt.preserve_owner && ::fchown(out, st.st_uid, st.st_gid) != 0)
        r = fail_errno(dst.string(), errno);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (r && ::futimens(out, times) != 0) r = fail_errno(dst.string(), errno);
    ::close(in);
    if (::close(out) != 0 && r) r = fail_errno(dst.string(), errno);
    if (!r) return tl::unexpected(r.error());
    return h.hex_digest();
}

Result<> finish_dir(const stdfs::path &dst, const struct stat &st, const CopyOptions &opt) {
    if (opt.preserve_owner && ::lchown(dst.c_str(), st.st_uid, st.st_gid) != 0)
        return fail_errno(dst.string(), errno);
    if (::chmod(dst.c_str(), st.st_mode & 07777) != 0) return fail_errno(dst.string(), errno);
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (::utimensat(AT_FDCWD, dst.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
        return fail_errno(dst.string(), errno);
    return {};
}

// What a node without bytes is, for digests and comparisons.
std::string other_content(const struct stat &st) {
    if (S_ISFIFO(st.st_mode)) return "fifo";
    if (S_ISSOCK(st.st_mode)) return "socket";
    std::string kind = S_ISCHR(st.st_mode) ? "chr " : S_ISBLK(st.st_mode) ? "blk " : "? ";
    return kind + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
}

// Recreates a FIFO, socket or device node at d.
Result<> make_node(const stdfs::path &s, const stdfs::path &d, const struct stat &st) {
    int rc = S_ISFIFO(st.st_mode) ? ::mkfifo(d.c_str(), st.st_mode & 07777)
                                  : ::mknod(d.c_str(), st.st_mode, st.st_rdev);
    if (rc != 0)
        return fail_errno("cannot recreate " + other_content(st) + " " + s.string(), errno,
                          "remove it, or run as root to keep a device node");
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    (void)::utimensat(AT_FDCWD, d.c_str(), times, AT_SYMLINK_NOFOLLOW);
    return {};
}

struct CopyState {
    struct Link {
        stdfs::path src, first_copy;
        nlink_t seen = 1, nlink = 1;
    };
    std::map<std::pair<dev_t, ino_t>, Link> links; // files with several names
};

Result<> copy_rec(const stdfs::path &src, const stdfs::path &dst, const std::string &rel,
                  const CopyOptions &opt, Digest &out, CopyState &cs) {
    stdfs::path s = rel.empty() ? src : src / rel;
    stdfs::path d = rel.empty() ? dst : dst / rel;
    struct stat st {};
    if (::lstat(s.c_str(), &st) != 0) return fail_errno(s.string(), errno);
    Entry e{kind_of(st.st_mode), 0, static_cast<mode_t>(st.st_mode & 07777), {}, mtime_ns(st)};
    if (e.kind == Kind::file && st.st_nlink > 1 && cs.links.count({st.st_dev, st.st_ino})) {
        // Another name of a file already copied: the same file again, as a hard link.
        auto &first = cs.links[{st.st_dev, st.st_ino}];
        if (::link(first.first_copy.c_str(), d.c_str()) != 0) return fail_errno(d.string(), errno);
        ++first.seen;
        auto fr = stdfs::relative(first.first_copy, dst).string();
        e.size = static_cast<std::uint64_t>(st.st_size);
        e.content = out.count(fr) ? out[fr].content : std::string();
    } else if (e.kind == Kind::file) {
        auto h = copy_file(s, d, st, opt);
        if (!h) return tl::unexpected(h.error());
        e.size = static_cast<std::uint64_t>(st.st_size);
        e.content = *h;
        if (st.st_nlink > 1) cs.links[{st.st_dev, st.st_ino}] = {s, d, 1, st.st_nlink};
        if (opt.on_step) opt.on_step("file-copied");
    } else if (e.kind == Kind::other) {
        BERTH_TRY(make_node(s, d, st));
        e.content = other_content(st);
    } else if (e.kind == Kind::symlink) {
        auto target = read_link(s);
        if (!target) return tl::unexpected(target.error());
        if (::symlink(target->c_str(), d.c_str()) != 0) return fail_errno(d.string(), errno);
        if (opt.preserve_owner) (void)::lchown(d.c_str(), st.st_uid, st.st_gid);
        struct timespec times[2] = {st.st_atim, st.st_mtim};
        (void)::utimensat(AT_FDCWD, d.c_str(), times, AT_SYMLINK_NOFOLLOW);
        e.content = *target;
    } else if (e.kind == Kind::dir) {
        if (::mkdir(d.c_str(), 0700) != 0) return fail_errno(d.string(), errno);
        auto names = list_dir(s);
        if (!names) return tl::unexpected(names.error());
        for (const auto &n : *names)
            BERTH_TRY(copy_rec(src, dst, join_rel(rel, n), opt, out, cs));
        BERTH_TRY(finish_dir(d, st, opt));
    }
    out[rel] = std::move(e);
    return {};
}

} // namespace

Result<Stats> stats(const stdfs::path &root) {
    Stats s;
    auto r = walk(root, "",
                  [&](const std::string &, const stdfs::path &, const struct stat &st) -> Result<> {
                      s.disk += static_cast<std::uint64_t>(st.st_blocks) * 512;
                      switch (kind_of(st.st_mode)) {
                      case Kind::file:
                          ++s.files;
                          s.bytes += static_cast<std::uint64_t>(st.st_size);
                          break;
                      case Kind::dir:
                          ++s.dirs;
                          break;
                      case Kind::symlink:
                          ++s.symlinks;
                          break;
                      case Kind::other:
                          break;
                      }
                      return {};
                  });
    if (!r) return tl::unexpected(r.error());
    return s;
}

Result<Digest> digest(const stdfs::path &root) {
    Digest d;
    auto r = walk(
        root, "",
        [&](const std::string &rel, const stdfs::path &p, const struct stat &st) -> Result<> {
            Entry e{
                kind_of(st.st_mode), 0, static_cast<mode_t>(st.st_mode & 07777), {}, mtime_ns(st)};
            if (e.kind == Kind::file) {
                auto h = sha256_file(p);
                if (!h) return tl::unexpected(h.error());
                e.size = static_cast<std::uint64_t>(st.st_size);
                e.content = *h;
            } else if (e.kind == Kind::symlink) {
                auto t = read_link(p);
                if (!t) return tl::unexpected(t.error());
                e.content = *t;
            } else if (e.kind == Kind::other) {
                e.content = other_content(st);
            }
            d[rel] = std::move(e);
            return {};
        });
    if (!r) return tl::unexpected(r.error());
    return d;
}

Result<Digest> shallow(const stdfs::path &root) {
    Digest d;
    auto r = walk(
        root, "",
        [&](const std::string &rel, const stdfs::path &, const struct stat &st) -> Result<> {
            Entry e{
                kind_of(st.st_mode), 0, static_cast<mode_t>(st.st_mode & 07777), {}, mtime_ns(st)};
            if (e.kind == Kind::file) e.size = static_cast<std::uint64_t>(st.st_size);
            d[rel] = std::move(e);
            return {};
        });
    if (!r) return tl::unexpected(r.error());
    return d;
}

Result<Digest> copy(const stdfs::path &src, const stdfs::path &dst, const CopyOptions &opt) {
    Digest out;
    CopyState cs;
    BERTH_TRY(copy_rec(src, dst, "", opt, out, cs));
    if (opt.notes)
        for (const auto &[key, l] : cs.links)
            if (l.nlink > l.seen)
                opt.notes->push_back(l.src.string() + " has hard links outside " + src.string() +
                                     ": copied as its own file");
    // One syncfs for the whole copy instead of an fsync per file: the same guarantee (every
    // byte is on disk before the caller's rename makes the copy visible), far fewer flushes.
    int fd = ::open(dst.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail_errno(dst.parent_path().string(), errno);
    int rc = ::syncfs(fd);
    int e = errno;
    ::close(fd);
    if (rc != 0) return fail_errno("sync " + dst.string(), e);
    return out;
}

std::vector<std::string> compare(const Digest &expected, const Digest &actual) {
    std::vector<std::string> diffs;
    auto name = [](const std::string &rel) { return rel.empty() ? std::string(".") : rel; };
    for (const auto &[rel, e] : expected) {
        auto it = actual.find(rel);
        if (it == actual.end()) {
            diffs.push_back(name(rel) + ": missing");
            continue;
        }
        const Entry &a = it->second;
        if (a.kind != e.kind)
            diffs.push_back(name(rel) + ": type differs");
        else if (a.size != e.size || a.content != e.content)
            diffs.push_back(name(rel) + ": content differs");
        else if (a.mode != e.mode && e.kind != Kind::symlink)
            diffs.push_back(name(rel) + ": mode differs");
    }
    for (const auto &[rel, a] : actual)
        if (!expected.count(rel)) diffs.push_back(name(rel) + ": unexpected");
    return diffs;
}

Result<> remove(const stdfs::path &root) {
    std::error_code ec;
    stdfs::remove_all(root, ec);
    if (ec) return fail(root.string() + ": " + ec.message());
    return {};
}

} // namespace berth::tree
