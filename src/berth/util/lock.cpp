#include "util/lock.hpp"

#include "util/strings.hpp"

#include <cerrno>
#include <fcntl.h>
#include <string>
#include <sys/file.h>
#include <thread>
#include <unistd.h>

namespace berth {

FileLock &FileLock::operator=(FileLock &&o) noexcept {
    if (this != &o) {
        if (m_fd >= 0) ::close(m_fd);
        m_fd = o.m_fd;
        o.m_fd = -1;
    }
    return *this;
}

FileLock::~FileLock() {
    if (m_fd >= 0) ::close(m_fd);
}

Result<FileLock> FileLock::acquire(const std::filesystem::path &p, std::chrono::milliseconds wait) {
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return fail_errno(p.string(), errno);
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            int e = errno;
            ::close(fd);
            return fail_errno("lock " + p.string(), e);
        }
        if (std::chrono::steady_clock::now() >= deadline) {
            char buf[32] = {};
            ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
            ::close(fd);
            std::string holder =
                n > 0 ? str::trim(std::string(buf, static_cast<std::size_t>(n))) : "?";
            return fail("another berth (pid " + holder + ") is working on this store",
                        "wait for it to finish, then rerun", 4);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd, 0) == 0) (void)!::pwrite(fd, pid.data(), pid.size(), 0);
    return FileLock(fd);
}

} // namespace berth
