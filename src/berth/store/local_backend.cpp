// LocalBackend: a repository in a directory. Files are written to a temp name and renamed;
// batches are made durable with one syncfs; readers and writers share a flock(2) lock that
// the kernel drops when the holder dies, so a killed save never leaves it stale.
#include "store/backend.hpp"

#include "util/crash.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"

#include <cerrno>
#include <fcntl.h>
#include <memory>
#include <sys/file.h>
#include <unistd.h>

namespace berth::store {

namespace stdfs = std::filesystem;

bool valid_repo_name(std::string_view n) {
    auto hex = [](std::string_view s, std::size_t len) {
        return s.size() == len && s.find_first_not_of("0123456789abcdef") == std::string::npos;
    };
    auto strip = [&](std::string_view prefix, std::string_view &rest) {
        if (n.substr(0, prefix.size()) != prefix) return false;
        rest = n.substr(prefix.size());
        return true;
    };
    std::string_view r;
    if (n == "config.json") return true;
    if (strip("keys/", r)) return hex(r, 16);
    if (strip("trees/", r)) return hex(r, 64);
    if (strip("index/", r))
        return r.size() == 68 && r.substr(64) == ".idx" && hex(r.substr(0, 64), 64);
    if (strip("snapshots/", r))
        return r.size() == 21 && r.substr(16) == ".json" && hex(r.substr(0, 16), 16);
    if (strip("data/", r))
        return r.size() == 67 && r[2] == '/' && hex(r.substr(3), 64) &&
               r.substr(0, 2) == r.substr(3, 2);
    return false;
}

namespace {

const char *const k_folders[] = {"data", "index", "trees", "snapshots", "keys"};

class LocalBackend : public Backend {
public:
    explicit LocalBackend(stdfs::path root) : m_root(std::move(root)) {}
    ~LocalBackend() override {
        if (m_read_fd >= 0) ::close(m_read_fd);
        if (m_lock_fd >= 0) ::close(m_lock_fd);
    }
    std::string location() const override { return m_root.string(); }
    std::optional<stdfs::path> local_root() const override { return m_root; }

    Result<std::optional<std::string>> get(const std::string &name) override {
        if (!valid_repo_name(name)) return fail("bad repository file name '" + name + "'");
        auto p = m_root / name;
        std::error_code ec;
        if (!stdfs::exists(p, ec)) return std::optional<std::string>();
        auto text = fs::read_file(p);
        if (!text) return tl::unexpected(text.error());
        return std::optional<std::string>(std::move(*text));
    }

    Result<std::string> get_range(const std::string &name, std::uint64_t offset,
                                  std::uint32_t len) override {
        if (!valid_repo_name(name)) return fail("bad repository file name '" + name + "'");
        if (m_read_name != name) { // packs are read in runs: keep the last one open
            if (m_read_fd >= 0) ::close(m_read_fd);
            m_read_fd = ::open((m_root / name).c_str(), O_RDONLY | O_CLOEXEC);
            m_read_name = name;
            if (m_read_fd < 0) {
                m_read_name.clear();
                return fail_errno(name, errno, "run `berth verify`");
            }
        }
        std::string out(len, '\0');
        if (::pread(m_read_fd, out.data(), len, static_cast<off_t>(offset)) !=
            static_cast<ssize_t>(len))
            return fail(name + " is truncated", "run `berth verify`");
        return out;
    }

    Result<> put(const std::string &name, std::string_view bytes, bool durable) override {
        if (!valid_repo_name(name)) return fail("bad repository file name '" + name + "'");
        auto p = m_root / name;
        std::error_code ec;
        if (stdfs::exists(p, ec)) return fail(name + " exists already; it is not replaced");
        BERTH_TRY(fs::make_dirs(p.parent_path(), 0700));
        auto w = fs::write_file_atomic(p, bytes, 0600, durable);
        if (!w) w.error().fix = "free space where the repository is; what is saved so far is kept";
        return w;
    }

    Result<> sync() override {
        int fd = ::open(m_root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return fail_errno(m_root.string(), errno);
        int rc = ::syncfs(fd);
        int e = errno;
        ::close(fd);
        if (rc != 0)
            return fail_errno("sync " + m_root.string(), e, "free space where the repository is");
        return {};
    }

    Result<std::vector<ListedFile>> list(const std::string &folder) override {
        std::vector<ListedFile> out;
        std::error_code ec;
        auto add = [&](const stdfs::directory_entry &e, const std::string &prefix) {
            std::string name = prefix + e.path().filename().string();
            std::error_code ec2;
            if (!e.is_regular_file(ec2)) return;
            // Temp files of a killed writer are listed too (prune removes them).
            out.push_back({name, e.file_size(ec2)});
        };
        auto dir = m_root / folder;
        if (!stdfs::exists(dir, ec)) return out;
        for (const auto &e : stdfs::directory_iterator(dir, ec)) {
            if (folder == "data" && e.is_directory(ec)) {
                std::string sub = e.path().filename();
                for (const auto &f : stdfs::directory_iterator(e.path(), ec))
                    add(f, "data/" + sub + "/");
            } else {
                add(e, folder + "/");
            }
        }
        if (ec) return fail(dir.string() + ": " + ec.message());
        return out;
    }

    Result<> remove(const std::string &name) override {
        // Temp files of killed writers and strays in data/ (what prune clears) may be removed
        // too; nothing outside the folders.
        auto slash = name.rfind('/');
        bool stray = slash != std::string::npos && name.find("..") == std::string::npos &&
                     (name.find(".berth-tmp-") != std::string::npos ||
                      (name.rfind("data/", 0) == 0 && slash == 7));
        if (!valid_repo_name(name) && !stray)
            return fail("bad repository file name '" + name + "'");
        auto p = m_root / name;
        if (::unlink(p.c_str()) != 0 && errno != ENOENT) return fail_errno(p.string(), errno);
        return {};
    }

    Result<> lock(bool exclusive) override {
        auto path = m_root / "lock";
        int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) return fail_errno(path.string(), errno);
        if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
            char buf[128] = {};
            (void)!::pread(fd, buf, sizeof buf - 1, 0);
            ::close(fd);
            return fail("repository " + m_root.string() + " is in use (" + str::trim(buf) + ")",
                        "wait for the other berth to finish; a killed one releases it by itself",
                        4);
        }
        char host[64] = {};
        ::gethostname(host, sizeof host - 1);
        std::string who = "pid " + std::to_string(::getpid()) + " on " + host;
        if (exclusive && ::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, who.data(), who.size(), 0);
        if (m_lock_fd >= 0) ::close(m_lock_fd);
        m_lock_fd = fd; // released at close, or by the kernel when this process dies
        return {};
    }

    // Builds the new repository aside (ROOT.berth-init-<random>) and renames it into place, so
    // a kill at any instant leaves either no repository or a whole one, and concurrent first
    // saves converge: rename(2) onto an empty directory succeeds once; the losers use the
    // winner's.
    Result<> create(const std::vector<std::pair<std::string, std::string>> &files) override {
        const auto &root = m_root;
        std::error_code ec;
        if (stdfs::exists(root / "config.json", ec)) return {};
        // What an older berth killed mid-creation left: empty skeleton directories and nothing
        // else. Those (and only empty ones) are removed; anything else is refused below.
        if (stdfs::is_directory(root, ec)) {
            bool skeleton = true;
            for (const auto &e : stdfs::directory_iterator(root, ec)) {
                std::string n = e.path().filename();
                bool known = false;
                for (const char *d : k_folders)
                    known = known || n == d;
                skeleton = skeleton && known && e.is_directory(ec) && stdfs::is_empty(e.path(), ec);
            }
            if (skeleton && !ec)
                for (const char *d : k_folders)
                    ::rmdir((root / d).c_str());
        }
        if (stdfs::exists(root, ec) && !stdfs::is_empty(root, ec))
            return fail(root.string() + " is not empty and not a berth repository",
                        "pass an empty or new directory as --repo");
        BERTH_TRY(fs::make_dirs(root.parent_path(), 0700));
        std::string prefix = "." + root.filename().string() + ".berth-init-";
        auto tmp = root.parent_path() / (prefix + random_hex(6));
        BERTH_TRY(fs::make_dirs(tmp, 0700));
        // Held while this creator works, released by the kernel if it dies: a sibling whose
        // lock can be taken was left by a killed creator and is removed below.
        int held = ::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (held >= 0) ::flock(held, LOCK_EX);
        for (const char *d : k_folders)
            BERTH_TRY(fs::make_dirs(tmp / d, 0700));
        Result<> w;
        for (const auto &[name, bytes] : files) {
            if (!w) break;
            if (!valid_repo_name(name)) {
                w = fail("bad repository file name '" + name + "'");
                break;
            }
            w = fs::write_file_atomic(tmp / name, bytes, 0600);
        }
        if (w) w = fs::fsync_dir(tmp / "keys");
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

private:
    stdfs::path m_root;
    int m_lock_fd = -1, m_read_fd = -1;
    std::string m_read_name;
};

} // namespace

std::unique_ptr<Backend> local_backend(const stdfs::path &root) {
    return std::make_unique<LocalBackend>(fs::absolute_normal(root));
}

} // namespace berth::store
