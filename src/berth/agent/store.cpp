#include "agent/store.hpp"

#include "util/fs.hpp"

#include <cerrno>
#include <ctime>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace berth {

Result<Store> find_store(const std::string &configured, const std::filesystem::path &probe_root) {
    if (!configured.empty()) {
        auto p = fs::absolute_normal(configured);
        struct stat st {};
        if (::stat(p.c_str(), &st) != 0)
            return fail("store " + p.string() + " does not exist",
                        "create it, mount it, or pass another --store DIR", 1);
        if (!S_ISDIR(st.st_mode))
            return fail("store " + p.string() + " is not a directory", "pass --store DIR", 1);
        return Store{p};
    }
    auto storage = probe_root / "storage";
    struct stat st {};
    if (::stat(storage.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return Store{storage};
    return fail("no persistent store found (no /storage on this machine)",
                "pass --store DIR or set `store` with `berth config set store DIR`", 1);
}

Result<> Store::prepare() const {
    if (auto w = fs::probe_writable(root); !w)
        return fail(w.error().what,
                    "mount it read-write, fix its permissions, or pass --store DIR");
    for (const auto &d :
         {cfg(), meta(), journal_dir(), log_file().parent_path(), bin().parent_path()})
        BERTH_TRY(fs::make_dirs(d));
    return {};
}

std::string timestamp_name() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H-%M-%SZ", &tm);
    return buf;
}

void Store::log(const std::string &line) const {
    auto path = log_file();
    struct stat st {};
    // Keep the log small: one generation of history is enough to explain the last boots.
    if (::stat(path.c_str(), &st) == 0 && st.st_size > (1 << 20))
        (void)::rename(path.c_str(), (path.string() + ".1").c_str());
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char ts[32];
    std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::string l = std::string(ts) + " [" + std::to_string(::getpid()) + "] " + line + "\n";
    (void)!::write(fd, l.data(), l.size());
    ::close(fd);
}

} // namespace berth
