#include "core/cost.hpp"
#include "util/fs.hpp"
#include "util/lock.hpp"
#include "util/net.hpp"
#include "util/perms.hpp"
#include "util/strings.hpp"
#include "util/tree.hpp"
#include "util/websocket.hpp"

#include <fstream>
#include <functional>
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

// The WebSocket client: the RFC's handshake example, frames both ways, a server that lies.
TEST(WebSocket, HandshakeFramesAndRefusals) {
    using namespace berth::net;
    EXPECT_EQ(websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    const std::uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    // RFC 6455 5.7: a masked "Hello" from a client.
    EXPECT_EQ(make_ws_frame(0x1, "Hello", mask),
              std::string("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11));
    WsFrame f;
    EXPECT_EQ(*parse_ws_frame(std::string("\x81\x05Hel", 5), f, 100), 0u) << "needs more";
    EXPECT_EQ(*parse_ws_frame(std::string("\x81\x05Hello", 7), f, 100), 7u);
    EXPECT_TRUE(f.fin);
    EXPECT_EQ(f.payload, "Hello");
    std::string big = std::string("\x82\x7e\x01\x00", 4) + std::string(256, 'x');
    EXPECT_EQ(*parse_ws_frame(big, f, 1000), big.size());
    EXPECT_FALSE(parse_ws_frame(big, f, 100)) << "over the limit";
    EXPECT_FALSE(parse_ws_frame(std::string("\x81\x85\x37\xfa\x21\x3d\x7f", 7), f, 100))
        << "a server never masks";
    EXPECT_FALSE(parse_ws_frame(std::string("\xc1\x00", 2), f, 100)) << "reserved bit";
    std::string huge("\x81\x7f\xff\xff\xff\xff\xff\xff\xff\xff", 10);
    EXPECT_FALSE(parse_ws_frame(huge, f, 1u << 20));

    // A server that answers right: a fragmented message, a ping in between, then reads ours.
    auto serve = [](std::function<std::string(const std::string &key)> answer, std::string *got) {
        int port = 0, fd = listen_loopback(port);
        std::thread t([fd, answer, got] {
            int c = ::accept(fd, nullptr, nullptr);
            std::string req;
            char buf[4096];
            while (req.find("\r\n\r\n") == std::string::npos) {
                ssize_t n = ::read(c, buf, sizeof buf);
                if (n <= 0) break;
                req.append(buf, static_cast<std::size_t>(n));
            }
            auto k = req.find("Sec-WebSocket-Key: ");
            std::string key = k == std::string::npos ? "" : req.substr(k + 19, 24);
            std::string a = answer(key);
            (void)!::write(c, a.data(), a.size());
            if (got) {
                std::string in;
                while (in.size() < 6 + 2) { // a masked frame's head
                    ssize_t n = ::read(c, buf, sizeof buf);
                    if (n <= 0) break;
                    in.append(buf, static_cast<std::size_t>(n));
                }
                std::size_t len = static_cast<std::uint8_t>(in[1]) & 0x7f;
                while (in.size() < 6 + len) {
                    ssize_t n = ::read(c, buf, sizeof buf);
                    if (n <= 0) break;
                    in.append(buf, static_cast<std::size_t>(n));
                }
                // Skip a pong if it came first.
                if ((static_cast<std::uint8_t>(in[0]) & 0x0f) == 0xA) {
                    in.erase(0, 6 + len);
                    while (in.size() < 6) {
                        ssize_t n = ::read(c, buf, sizeof buf);
                        if (n <= 0) break;
                        in.append(buf, static_cast<std::size_t>(n));
                    }
                    len = static_cast<std::uint8_t>(in[1]) & 0x7f;
                    while (in.size() < 6 + len) {
                        ssize_t n = ::read(c, buf, sizeof buf);
                        if (n <= 0) break;
                        in.append(buf, static_cast<std::size_t>(n));
                    }
                }
                if ((static_cast<std::uint8_t>(in[1]) & 0x80) && in.size() >= 6 + len)
                    for (std::size_t i = 0; i < len; ++i)
                        got->push_back(static_cast<char>(in[6 + i] ^ in[2 + i % 4]));
                ::sleep(1);
            }
            ::close(c);
            ::close(fd);
        });
        return std::make_pair(port, std::move(t));
    };
    auto ok101 = [](const std::string &key) {
        return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
               "Upgrade\r\nsec-websocket-accept: " +
               websocket_accept(key) + "\r\n\r\n" + std::string("\x01\x03{\"a", 5) +
               std::string("\x89\x00", 2) + std::string("\x80\x04\":1}", 6);
    };
    std::string got;
    auto [port, t] = serve(ok101, &got);
    auto ws = WebSocket::open("127.0.0.1", port, "/api/kernels/k/channels",
                              {"Authorization: token x"}, std::chrono::milliseconds(2000));
    ASSERT_TRUE(ws) << ws.error().what;
    auto msgs = ws->receive(std::chrono::milliseconds(2000));
    ASSERT_TRUE(msgs) << msgs.error().what;
    ASSERT_EQ(msgs->size(), 1u);
    EXPECT_EQ((*msgs)[0], "{\"a\":1}");
    ASSERT_TRUE(ws->send_text("{\"q\":2}", std::chrono::milliseconds(2000)));
    t.join();
    EXPECT_EQ(got, "{\"q\":2}");
    EXPECT_FALSE(ws->receive(std::chrono::milliseconds(500))) << "the server closed it";

    auto refused = [&](std::function<std::string(const std::string &)> answer) {
        auto [p, th] = serve(answer, nullptr);
        auto w = WebSocket::open("127.0.0.1", p, "/x", {}, std::chrono::milliseconds(2000));
        th.join();
        return !w;
    };
    EXPECT_TRUE(
        refused([](const std::string &) { return std::string("HTTP/1.1 403 Forbidden\r\n\r\n"); }));
    EXPECT_TRUE(refused([](const std::string &) {
        return std::string("HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: "
                           "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    })) << "a wrong accept";
    EXPECT_FALSE(
        WebSocket::open("127.0.0.1", port, "bad path", {}, std::chrono::milliseconds(100)));
}
