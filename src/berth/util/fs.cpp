#include "util/fs.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace berth {

tl::unexpected<Error> fail_errno(const std::string &what, int err, std::string fix) {
    return fail(what + ": " + std::strerror(err), std::move(fix));
}

} // namespace berth

namespace berth::fs {

Result<std::optional<struct stat>> lstat_opt(const stdfs::path &p) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0) return st;
    if (errno == ENOENT || errno == ENOTDIR) return std::optional<struct stat>{};
    return fail_errno(p.string(), errno);
}

Result<std::string> read_file(const stdfs::path &p) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail_errno(p.string(), errno);
    std::string out;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            ::close(fd);
            return fail_errno(p.string(), e);
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

stdfs::path temp_sibling(const stdfs::path &p, std::string_view tag) {
    static std::atomic<unsigned> counter{0};
    std::string name = "." + p.filename().string() + ".berth-" + std::string(tag) + "-" +
                       std::to_string(::getpid()) + "-" + std::to_string(counter++);
    return p.parent_path() / name;
}

Result<> fsync_dir(const stdfs::path &dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return fail_errno(dir.string(), errno);
    int rc = ::fsync(fd);
    int e = errno;
    ::close(fd);
    // Some file systems (tmpfs, some FUSE) refuse fsync on directories; that is not a failure.
    if (rc != 0 && e != EINVAL && e != EROFS) return fail_errno("fsync " + dir.string(), e);
    return {};
}

static Result<> write_all(int fd, std::string_view data, const stdfs::path &p) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_errno(p.string(), errno);
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

Result<> write_file_atomic(const stdfs::path &p, std::string_view content, mode_t mode,
                           bool durable) {
    stdfs::path tmp = temp_sibling(p);
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return fail_errno(tmp.parent_path().string(), errno);
    auto r = write_all(fd, content, p);
    if (r && ::fchmod(fd, mode) != 0) r = fail_errno(p.string(), errno);
    if (r && durable && ::fsync(fd) != 0) r = fail_errno(p.string(), errno);
    // Not durable yet, but large (a pack): start writing it back now, so the caller's later
    // syncfs waits for little and the disk works while the CPU does.
    if (r && !durable && content.size() >= (4u << 20))
        (void)::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    ::close(fd);
    if (r && ::rename(tmp.c_str(), p.c_str()) != 0) r = fail_errno(p.string(), errno);
    if (!r) {
        ::unlink(tmp.c_str());
        return r;
    }
    if (!durable) return {};
    return fsync_dir(p.parent_path().empty() ? stdfs::path(".") : p.parent_path());
}

Result<> make_dirs(const stdfs::path &dir, mode_t mode) {
    if (dir.empty()) return {};
    struct stat st {};
    if (::stat(dir.c_str(), &st) == 0) {
        if (S_ISDIR(st.st_mode)) return {};
        return fail(dir.string() + " exists and is not a directory", "move it away");
    }
    if (dir.has_parent_path() && dir.parent_path() != dir) BERTH_TRY(make_dirs(dir.parent_path()));
    if (::mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) return fail_errno(dir.string(), errno);
    return {};
}

Result<> symlink_atomic(const stdfs::path &target, const stdfs::path &link, bool durable) {
    auto st = lstat_opt(link);
    if (!st) return tl::unexpected(st.error());
    if (*st && !S_ISLNK((*st)->st_mode))
        return fail(link.string() + " exists and is not a symlink", "refusing to replace it");
    stdfs::path tmp = temp_sibling(link, "link");
    if (::symlink(target.c_str(), tmp.c_str()) != 0) return fail_errno(tmp.string(), errno);
    if (::rename(tmp.c_str(), link.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return fail_errno(link.string(), e);
    }
    return durable ? fsync_dir(link.parent_path()) : Result<>{};
}

Result<> probe_writable(const stdfs::path &dir) {
    stdfs::path probe = temp_sibling(dir / "probe", "probe");
    int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return fail_errno(dir.string() + " is not writable", errno);
    ::close(fd);
    ::unlink(probe.c_str());
    return {};
}

Result<std::uint64_t> free_bytes(const stdfs::path &dir) {
    struct statvfs v {};
    if (::statvfs(dir.c_str(), &v) != 0) return fail_errno(dir.string(), errno);
    return static_cast<std::uint64_t>(v.f_bavail) * v.f_frsize;
}

std::string display(const stdfs::path &p, const stdfs::path &home) {
    auto s = p.string();
    auto h = home.string();
    if (!h.empty() && s.rfind(h, 0) == 0 && (s.size() == h.size() || s[h.size()] == '/'))
        return "~" + s.substr(h.size());
    return s;
}

stdfs::path absolute_normal(const stdfs::path &p) {
    return stdfs::absolute(p).lexically_normal();
}

bool is_within(const stdfs::path &child, const stdfs::path &base) {
    auto c = absolute_normal(child), b = absolute_normal(base);
    auto rel = c.lexically_relative(b);
    if (rel.empty()) return false;
    auto first = *rel.begin();
    return first != "..";
}

} // namespace berth::fs
