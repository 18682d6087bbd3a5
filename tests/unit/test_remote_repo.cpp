// Repository locations, and a repository served over a byte stream (what ssh:// carries):
// every call through the protocol, a client that lies about a chunk, an append-only serve.
#include "store/compress.hpp"
#include "store/location.hpp"
#include "store/remote_repo.hpp"
#include "store/repository.hpp"

#include <gtest/gtest.h>
#include <thread>
#include <unistd.h>

using namespace berth;
using namespace berth::store;
namespace stdfs = std::filesystem;

TEST(RepoLocation, DirectoriesSshAndRefusals) {
    auto d = parse_repo_location("/data/repo");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->kind, RepoLocation::local);
    EXPECT_EQ(d->dir, "/data/repo");
    EXPECT_TRUE(parse_repo_location("./a:b")) << "a relative path with a colon is a directory";

    auto s = parse_repo_location("ssh://ana@gpu-box.lan:2222/srv/berth");
    ASSERT_TRUE(s) << s.error().what;
    EXPECT_EQ(s->kind, RepoLocation::ssh);
    EXPECT_EQ(s->user, "ana");
    EXPECT_EQ(s->host, "gpu-box.lan");
    EXPECT_EQ(s->port, 2222);
    EXPECT_EQ(s->path, "/srv/berth");
    auto h = parse_repo_location("ssh://backup/~/berth-repo");
    ASSERT_TRUE(h);
    EXPECT_EQ(h->path, "berth-repo") << "/~/ is the login's home";
    EXPECT_EQ(h->port, 0);

    auto s3 = parse_repo_location("s3:https://s3.example.com/bucket/prefix");
    ASSERT_TRUE(s3);
    EXPECT_EQ(s3->kind, RepoLocation::s3);

    for (const char *bad :
         {"", "sftp://host/x", "rclone:remote:path", "b2:bucket", "s3:bucket", "ssh://host",
          "ssh://host/", "ssh://-oProxyCommand=x/p", "ssh://host:99999/p", "ssh://h/a/../../etc",
          "ssh://us;er@h/p", "ssh://host:/p", "/a\nb"}) {
        auto r = parse_repo_location(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_EQ(r.error().code, 2) << bad;
        }
    }
}

namespace {

struct Served : ::testing::Test {
    stdfs::path dir;
    std::thread server;
    int server_code = -1;
    void SetUp() override {
        char t[] = "/tmp/berth-served-XXXXXX";
        dir = ::mkdtemp(t);
    }
    void TearDown() override {
        if (server.joinable()) server.join();
        stdfs::remove_all(dir);
    }
    // A client connected to a serve of dir/repo running on a thread.
    std::unique_ptr<RemoteRepository> connect(bool append_only, bool create = true) {
        int to_server[2], to_client[2];
        EXPECT_EQ(::pipe(to_server), 0);
        EXPECT_EQ(::pipe(to_client), 0);
        server = std::thread([=, this] {
            server_code = serve_repository(to_server[0], to_client[1], dir / "repo", append_only);
            ::close(to_server[0]);
            ::close(to_client[1]);
        });
        auto r =
            RemoteRepository::connect(proc::Pipe{-1, to_server[1], to_client[0]}, "test", create);
        EXPECT_TRUE(r) << (r ? "" : r.error().what);
        return r ? std::move(*r) : nullptr;
    }
};

Snapshot snapshot_of(const std::string &tree) {
    Snapshot s;
    s.id = "0123456789abcdef";
    s.time = "2026-12-01T00:00:00Z";
    s.host = "h";
    s.source = "/w";
    s.tree = tree;
    return s;
}

} // namespace

TEST_F(Served, EveryCallRoundTrips) {
    auto r = connect(false);
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->append_only());
    EXPECT_EQ(r->id().size(), 32u);
    std::string data(100000, 'x');
    auto id = sha256_id(data.data(), data.size());
    ASSERT_TRUE(r->lock(true));
    ASSERT_TRUE(r->add_plain(id, data));
    ASSERT_TRUE(r->commit());
    auto back = r->read(id);
    ASSERT_TRUE(back) << back.error().what;
    EXPECT_EQ(*back, data);
    Tree t;
    Entry e;
    e.path = "f";
    e.size = data.size();
    e.chunks = {id};
    t.entries.push_back(e);
    auto tid = r->put_tree(t);
    ASSERT_TRUE(tid) << tid.error().what;
    auto t2 = r->get_tree(*tid);
    ASSERT_TRUE(t2);
    EXPECT_EQ(t2->entries.size(), 1u);
    ASSERT_TRUE(r->put_snapshot(snapshot_of(*tid)));
    EXPECT_FALSE(r->put_snapshot(snapshot_of(*tid))) << "a snapshot is never replaced";
    auto scan = r->scan_snapshots();
    ASSERT_EQ(scan.good.size(), 1u);
    auto found = r->find_snapshot("latest");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->tree, *tid);
    auto v = r->verify({});
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->problems.empty());
    EXPECT_EQ(v->chunks, 1u);
    auto f = r->forget(found->id);
    ASSERT_TRUE(f) << (f ? "" : f.error().what);
    EXPECT_TRUE(r->prune());
    r.reset(); // hangs up: the server ends cleanly
    server.join();
    EXPECT_EQ(server_code, 0);
}

TEST_F(Served, AChunkThatIsNotWhatItsIdSaysIsRefused) {
    auto r = connect(false);
    ASSERT_TRUE(r);
    std::string data = "honest bytes", other = "poisoned bytes";
    auto id = sha256_id(data.data(), data.size());
    ASSERT_TRUE(r->add(id, static_cast<std::uint32_t>(other.size()), k_raw, other));
    auto c = r->commit();
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().what.find("does not match its id"), std::string::npos) << c.error().what;
    EXPECT_FALSE(r->read(id)) << "the lie was kept";
    // The honest chunk still goes in afterwards.
    ASSERT_TRUE(r->add_plain(id, data));
    EXPECT_TRUE(r->commit());
    EXPECT_TRUE(r->read(id));
}

TEST_F(Served, AppendOnlyAddsAndReadsButNeverDeletes) {
    auto r = connect(true);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->append_only());
    std::string data = "kept";
    auto id = sha256_id(data.data(), data.size());
    ASSERT_TRUE(r->add_plain(id, data));
    ASSERT_TRUE(r->commit());
    Tree t;
    auto tid = r->put_tree(t);
    ASSERT_TRUE(tid);
    ASSERT_TRUE(r->put_snapshot(snapshot_of(*tid)));
    auto f = r->forget(r->scan_snapshots().good.at(0).id);
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().what.find("append-only"), std::string::npos);
    EXPECT_FALSE(r->prune());
    EXPECT_EQ(r->scan_snapshots().good.size(), 1u);
}

TEST_F(Served, NoRepositoryThereIsAClearErrorWithoutCreate) {
    int to_server[2], to_client[2];
    ASSERT_EQ(::pipe(to_server), 0);
    ASSERT_EQ(::pipe(to_client), 0);
    server = std::thread([&] {
        server_code = serve_repository(to_server[0], to_client[1], dir / "none", false);
        ::close(to_server[0]);
        ::close(to_client[1]);
    });
    auto r = RemoteRepository::connect(proc::Pipe{-1, to_server[1], to_client[0]}, "test", false);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what.find("test:"), std::string::npos) << r.error().what;
    EXPECT_FALSE(stdfs::exists(dir / "none"));
}
