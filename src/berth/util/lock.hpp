// An advisory lock file (flock) that dies with its process, so it is never stale.
#pragma once

#include "util/result.hpp"

#include <chrono>
#include <filesystem>

namespace berth {

class FileLock {
public:
    FileLock() = default;
    FileLock(FileLock &&o) noexcept : m_fd(o.m_fd) { o.m_fd = -1; }
    FileLock &operator=(FileLock &&o) noexcept;
    ~FileLock();

    // Takes the lock, waiting up to `wait` (0: not at all). When another process holds it,
    // fails naming that process's pid (written into the file by the holder).
    static Result<FileLock> acquire(const std::filesystem::path &p,
                                    std::chrono::milliseconds wait = std::chrono::milliseconds{0});

private:
    explicit FileLock(int fd) : m_fd(fd) {}
    int m_fd = -1;
};

} // namespace berth
