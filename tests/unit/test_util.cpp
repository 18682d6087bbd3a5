#include "core/cost.hpp"
#include "util/fs.hpp"
#include "util/lock.hpp"
#include "util/net.hpp"
#include "util/perms.hpp"
#include "util/strings.hpp"
#include "util/tree.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

using namespace berth;

namespace {
std::filesystem::path temp_dir() {
    char tmpl[] = "/tmp/berth-unit-XXXXXX";
    return ::mkdtemp(tmpl);
}
void write(const std::filesystem::path &p, const std::string &s) {
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << s;
}
} // namespace

TEST(Strings, EditDistanceAndClosest) {
    EXPECT_EQ(str::edit_distance("persist", "presist"), 1u); // transposition
    EXPECT_EQ(str::edit_distance("", "abc"), 3u);
    EXPECT_EQ(str::closest("presist", {"persist", "keys", "doctor"}), "persist");
    EXPECT_EQ(str::closest("docter", {"persist", "keys", "doctor"}), "doctor");
    EXPECT_FALSE(str::closest("zzzzzz", {"persist", "keys"}).has_value());
}

TEST(Strings, HumanAndQuote) {
    EXPECT_EQ(str::human_bytes(512), "512 B");
    EXPECT_EQ(str::human_bytes(1536), "1.5 KiB");
    EXPECT_EQ(str::human_bytes(300ull << 20), "300 MiB");
    EXPECT_EQ(str::shell_quote("it's"), "'it'\\''s'");
}

TEST(Perms, SeedModeExplainedWithRightDigits) {
    auto m = perms::parse("744");
    ASSERT_TRUE(m);
    EXPECT_EQ(*m, 0744u);
    EXPECT_EQ(perms::symbolic(*m), "rwxr--r--");
    auto lines = perms::explain(*m);
    ASSERT_EQ(lines.size(), 3u);
    EXPECT_NE(lines[0].find("7 = 4 (read) + 2 (write) + 1 (execute)"), std::string::npos);
    EXPECT_NE(lines[1].find("4 = 4 (read)"), std::string::npos);
    EXPECT_NE(lines[2].find("r--"), std::string::npos);
}

TEST(Perms, SymbolicSpecialBitsAndErrors) {
    EXPECT_EQ(*perms::parse("rwsr-xr-x"), 04755u);
    EXPECT_EQ(perms::symbolic(01777), "rwxrwxrwt");
    EXPECT_EQ(perms::symbolic(0600), "rw-------");
    auto bad = perms::parse("798");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().what.find("798"), std::string::npos);
    EXPECT_EQ(bad.error().code, 2);
    EXPECT_FALSE(perms::parse("rwxrwxrwa"));
}

TEST(Cost, StorageOverageIsPerGbMonth) {
    EXPECT_DOUBLE_EQ(cost::overage_per_month(10, 15, 0.29), 0.0);
    EXPECT_NEAR(cost::overage_per_month(25, 15, 0.29), 2.9, 1e-9);
    auto b = cost::estimate({0.297, 0.00694 * 720 / 10, 0.02, 0.02}, {10, 10, 10, 5, 0});
    EXPECT_NEAR(b.rent, 2.97, 1e-9);
    EXPECT_NEAR(b.storage, 0.0694, 1e-9); // the seed's $0.00694/hour per 10 GB, for 10 hours
    EXPECT_NEAR(b.transfer, 0.10, 1e-9);
}

TEST(Tree, CopyKeepsContentModesAndMtimesAndVerifies) {
    auto d = temp_dir();
    write(d / "src/a.txt", "hello");
    write(d / "src/sub/b.bin", std::string(3 << 20, 'x'));
    ::chmod((d / "src/a.txt").c_str(), 0640);
    std::filesystem::create_symlink("sub/b.bin", d / "src/link");
    auto copied = tree::copy(d / "src", d / "dst");
    ASSERT_TRUE(copied) << copied.error().what;
    auto again = tree::digest(d / "dst");
    ASSERT_TRUE(again);
    EXPECT_TRUE(tree::compare(*copied, *again).empty());
    struct stat a {
    }, b{};
    ::stat((d / "src/sub/b.bin").c_str(), &a);
    ::stat((d / "dst/sub/b.bin").c_str(), &b);
    EXPECT_EQ(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
    EXPECT_EQ(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
    ::stat((d / "dst/a.txt").c_str(), &b);
    EXPECT_EQ(b.st_mode & 0777, 0640u);
    write(d / "dst/a.txt", "changed");
    auto changed = tree::digest(d / "dst");
    auto diffs = tree::compare(*copied, *changed);
    ASSERT_EQ(diffs.size(), 1u);
    EXPECT_EQ(diffs[0], "a.txt: content differs");
    std::filesystem::remove_all(d);
}

TEST(Tree, CopyRefusesExistingDestination) {
    auto d = temp_dir();
    write(d / "src/a", "1");
    std::filesystem::create_directories(d / "dst");
    EXPECT_FALSE(tree::copy(d / "src", d / "dst"));
    std::filesystem::remove_all(d);
}

TEST(Fs, AtomicWriteAndWithin) {
    auto d = temp_dir();
    ASSERT_TRUE(fs::write_file_atomic(d / "f", "one", 0600));
    ASSERT_TRUE(fs::write_file_atomic(d / "f", "two", 0600));
    EXPECT_EQ(*fs::read_file(d / "f"), "two");
    EXPECT_EQ(std::distance(std::filesystem::directory_iterator(d), {}), 1); // no temp left
    EXPECT_TRUE(fs::is_within("/root/.local", "/root"));
    EXPECT_FALSE(fs::is_within("/rooty", "/root"));
    EXPECT_FALSE(fs::is_within("/root/../etc", "/root"));
    std::filesystem::remove_all(d);
}

TEST(Lock, SecondHolderIsRefusedWithPid) {
    auto d = temp_dir();
    auto first = FileLock::acquire(d / "lock");
    ASSERT_TRUE(first);
    // flock locks belong to the open file description: a second open in this process conflicts.
    auto second = FileLock::acquire(d / "lock");
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code, 4);
    EXPECT_NE(second.error().what.find(std::to_string(::getpid())), std::string::npos);
    first = FileLock();
    EXPECT_TRUE(FileLock::acquire(d / "lock"));
    std::filesystem::remove_all(d);
}

// ssh_answers: an SSH banner counts; a port that accepts and closes (a proxy in front of a
// machine whose sshd is not up) does not, nor does one that speaks something else.
namespace {
int listen_loopback(int &port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr *>(&a), sizeof a);
    ::listen(fd, 4);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr *>(&a), &len);
    port = ntohs(a.sin_port);
    return fd;
}
bool probe_with(const std::string &greeting) {
    int port = 0, fd = listen_loopback(port);
    std::thread server([&] {
        int c = ::accept(fd, nullptr, nullptr);
        if (c >= 0) {
            if (!greeting.empty()) (void)!::write(c, greeting.data(), greeting.size());
            ::close(c);
        }
    });
    bool ok = berth::net::ssh_answers("127.0.0.1", port, std::chrono::milliseconds(2000));
    server.join();
    ::close(fd);
    return ok;
}
} // namespace

TEST(Net, SshAnswersOnlyWithABanner) {
    EXPECT_TRUE(probe_with("SSH-2.0-OpenSSH_9.2\r\n"));
    EXPECT_FALSE(probe_with("")) << "accepted and closed: no sshd behind the proxy yet";
    EXPECT_FALSE(probe_with("HTTP/1.1 400 Bad Request\r\n"));
    int port = 0, fd = listen_loopback(port);
    ::close(fd); // nothing listens any more
    EXPECT_FALSE(berth::net::ssh_answers("127.0.0.1", port, std::chrono::milliseconds(500)));
}
