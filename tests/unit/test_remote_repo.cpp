// Repository locations, encryption at rest, and a repository served over a byte stream (what
// ssh:// carries): every call through the protocol, what the host sees, a lying client, an
// append-only serve, wrong keys and passphrases.
#include "store/compress.hpp"
#include "store/crypto.hpp"
#include "store/location.hpp"
#include "store/remote_backend.hpp"
#include "store/repository.hpp"
#include "store/s3_backend.hpp"
#include "store_keys.hpp"
#include "util/fs.hpp"

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
    EXPECT_EQ(s3->endpoint, "https://s3.example.com");
    EXPECT_EQ(s3->bucket, "bucket");
    EXPECT_EQ(s3->prefix, "prefix");
    auto s3b = parse_repo_location("s3:http://127.0.0.1:9000/my-bucket/");
    ASSERT_TRUE(s3b);
    EXPECT_EQ(s3b->endpoint, "http://127.0.0.1:9000");
    EXPECT_EQ(s3b->prefix, "");
    for (const char *bad : {"s3:https://h/", "s3:https://h/Bad_Bucket", "s3:https://h/b/../x",
                            "s3:https://h/bkt/a//b", "s3:https://h/bkt/a b", "s3:https:///bkt"})
        EXPECT_FALSE(parse_repo_location(bad)) << bad;

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

TEST(Crypto, SealOpensOnlyUnchangedUnderItsNameAndKey) {
    auto k = MasterKey::random();
    Sealer s(k.enc);
    auto sealed = s.seal("plain text", "trees/abc");
    EXPECT_EQ(sealed.size(), 10 + Sealer::overhead);
    EXPECT_EQ(sealed.find("plain"), std::string::npos);
    auto back = s.open(sealed, "trees/abc");
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, "plain text");
    EXPECT_FALSE(s.open(sealed, "trees/abd")) << "moved to another name";
    EXPECT_NE(s.seal("plain text", "x"), s.seal("plain text", "x")) << "a fresh nonce each time";
    for (std::size_t i = 0; i < sealed.size(); ++i) {
        auto bad = sealed;
        bad[i] ^= 0x01;
        EXPECT_FALSE(s.open(bad, "trees/abc")) << "flipped byte " << i;
    }
    EXPECT_FALSE(Sealer(MasterKey::random().enc).open(sealed, "trees/abc")) << "another key";
    EXPECT_FALSE(s.open(sealed.substr(0, 20), "trees/abc"));
}

TEST(Crypto, ChunkNamesAreKeyedAndPassphrasesWrapTheKey) {
    auto k = MasterKey::random();
    IdHasher keyed(k.mac), plain;
    EXPECT_EQ(plain("abc", 3), sha256_id("abc", 3));
    EXPECT_NE(keyed("abc", 3), sha256_id("abc", 3)) << "the host cannot test a guess";
    EXPECT_NE(keyed("abc", 3), IdHasher(MasterKey::random().mac)("abc", 3));
    auto again = IdHasher::from_hex(keyed.key_hex());
    ASSERT_TRUE(again);
    EXPECT_EQ((*again)("abc", 3), keyed("abc", 3));
    auto entry = wrap_master_key(k, "correct horse");
    ASSERT_TRUE(entry);
    EXPECT_EQ(entry->find(keyed.key_hex()), std::string::npos);
    auto back = unwrap_master_key(*entry, "correct horse");
    ASSERT_TRUE(back) << back.error().what;
    EXPECT_EQ(back->enc, k.enc);
    EXPECT_EQ(back->mac, k.mac);
    auto wrong = unwrap_master_key(*entry, "Correct horse");
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().what.find("wrong passphrase"), std::string::npos);
    // A crafted entry asking for a huge scrypt is refused before any work.
    auto j = *entry;
    j.replace(j.find("\"N\": 32768"), 10, "\"N\": 1073741824");
    EXPECT_FALSE(unwrap_master_key(j, "correct horse"));
}

TEST(S3Listing, KeysSizesAndPagesAreReadAndNonsenseRefused) {
    auto l = parse_s3_listing(
        R"(<?xml version="1.0"?><ListBucketResult><IsTruncated>true</IsTruncated>)"
        R"(<Contents><Key>p/index/a&amp;b</Key><Size>49</Size></Contents>)"
        R"(<Contents><Key>p/data/00/x</Key><Size>33554432</Size></Contents>)"
        R"(<NextContinuationToken>tok/en==</NextContinuationToken></ListBucketResult>)");
    ASSERT_TRUE(l) << l.error().what;
    ASSERT_EQ(l->files.size(), 2u);
    EXPECT_EQ(l->files[0].name, "p/index/a&b");
    EXPECT_EQ(l->files[1].size, 33554432u);
    EXPECT_TRUE(l->truncated);
    EXPECT_EQ(l->next_token, "tok/en==");
    EXPECT_FALSE(parse_s3_listing("<Error><Code>AccessDenied</Code></Error>"));
    EXPECT_FALSE(parse_s3_listing(
        "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>"));
    EXPECT_FALSE(parse_s3_listing(
        "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>"));
}

namespace {

struct Served : ::testing::Test {
    stdfs::path dir;
    std::thread server;
    int server_code = -1;
    void SetUp() override {
        char t[] = "/tmp/berth-served-XXXXXX";
        dir = ::mkdtemp(t);
        ::setenv("BERTH_CACHE_DIR", (dir / "cache").c_str(), 1); // index copies of the host's
    }
    void TearDown() override {
        if (server.joinable()) server.join();
        ::unsetenv("BERTH_CACHE_DIR");
        stdfs::remove_all(dir);
    }
    // A backend connected to a serve of dir/repo running on a thread.
    std::unique_ptr<Backend> backend(bool append_only, const std::string &sub = "repo") {
        if (server.joinable()) server.join();
        int to_server[2], to_client[2];
        EXPECT_EQ(::pipe(to_server), 0);
        EXPECT_EQ(::pipe(to_client), 0);
        server = std::thread([=, this] {
            server_code = serve_repository(to_server[0], to_client[1], dir / sub, append_only);
            ::close(to_server[0]);
            ::close(to_client[1]);
        });
        auto b = connect_remote_backend(proc::Pipe{-1, to_server[1], to_client[0]}, "test");
        EXPECT_TRUE(b) << (b ? "" : b.error().what);
        return b ? std::move(*b) : nullptr;
    }
    std::unique_ptr<Repository> connect(bool append_only, bool create = true,
                                        KeyOptions keys = {}) {
        if (keys.key_file.empty() && !keys.key && !keys.passphrase) keys = test_keys(dir);
        auto r = Repository::open(backend(append_only), create, keys);
        EXPECT_TRUE(r) << (r ? "" : r.error().what);
        return r ? std::move(*r) : nullptr;
    }
    // Every file of the repository as the host stores it, concatenated.
    std::string everything_on_host() {
        std::string all;
        for (const auto &e : stdfs::recursive_directory_iterator(dir / "repo"))
            if (e.is_regular_file()) all += *fs::read_file(e.path());
        return all;
    }
};

Snapshot snapshot_of(const std::string &tree, const std::string &id = "0123456789abcdef") {
    Snapshot s;
    s.id = id;
    s.time = "2026-12-01T00:00:00Z";
    s.host = "secret-laptop-name";
    s.source = "/w";
    s.tree = tree;
    return s;
}

} // namespace

TEST_F(Served, EveryCallRoundTripsAndTheHostSeesNoPlaintext) {
    auto r = connect(false);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->encrypted());
    EXPECT_FALSE(r->backend().append_only());
    EXPECT_EQ(r->id().size(), 32u);
    std::string data;
    for (int i = 0; i < 5000; ++i)
        data += "SECRET-CONTENT-" + std::to_string(i);
    auto id = r->ids()(data);
    ASSERT_TRUE(r->lock(true));
    ASSERT_TRUE(r->add_plain(id, data));
    ASSERT_TRUE(r->commit());
    auto back = r->read(id);
    ASSERT_TRUE(back) << back.error().what;
    EXPECT_EQ(*back, data);
    Tree t;
    Entry e;
    e.path = "secret-file-name.txt";
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
    auto host = everything_on_host();
    for (const char *secret : {"SECRET-CONTENT", "secret-file-name", "secret-laptop-name"})
        EXPECT_EQ(host.find(secret), std::string::npos) << secret << " is readable on the host";
    EXPECT_EQ(host.find(to_hex(sha256_id(data.data(), data.size()))), std::string::npos);
    // A second client over a new connection finds it all (the index comes from the host).
    r.reset();
    r = connect(false, false);
    ASSERT_TRUE(r);
    auto scan = r->scan_snapshots();
    ASSERT_EQ(scan.good.size(), 1u);
    EXPECT_EQ(scan.good[0].host, "secret-laptop-name");
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

TEST_F(Served, AChunkThatIsNotWhatItsIdSaysIsNeverReadAsData) {
    auto r = connect(false);
    ASSERT_TRUE(r);
    std::string data = "honest bytes", other = "poisoned bytes";
    auto id = r->ids()(data);
    ASSERT_TRUE(r->add(id, static_cast<std::uint32_t>(other.size()), k_raw, other));
    ASSERT_TRUE(r->commit());
    auto read = r->read(id);
    ASSERT_FALSE(read) << "the lie was read back as data";
    EXPECT_NE(read.error().what.find("damaged"), std::string::npos) << read.error().what;
    auto v = r->verify({});
    ASSERT_TRUE(v);
    EXPECT_EQ(v->problems.size(), 1u);
}

TEST_F(Served, AFlippedByteInAnyStoredObjectIsDetected) {
    auto r = connect(false);
    ASSERT_TRUE(r);
    std::string data(300000, 'd');
    auto id = r->ids()(data);
    ASSERT_TRUE(r->add_plain(id, data));
    ASSERT_TRUE(r->commit());
    Tree t;
    t.entries.push_back({"f", EntryType::file, 0644, 0, data.size(), 0, 0, {}, {id}});
    auto tid = r->put_tree(t);
    ASSERT_TRUE(tid);
    ASSERT_TRUE(r->put_snapshot(snapshot_of(*tid)));
    r.reset();
    std::vector<stdfs::path> files;
    for (const auto &e : stdfs::recursive_directory_iterator(dir / "repo"))
        if (e.is_regular_file() && e.path().filename() != "config.json" &&
            e.path().filename() != "lock")
            files.push_back(e.path());
    ASSERT_EQ(files.size(), 4u); // pack, index, tree, snapshot
    for (const auto &f : files) {
        auto pristine = *fs::read_file(f);
        auto bad = pristine;
        bad[bad.size() / 2] ^= 0x20;
        stdfs::remove(f);
        ASSERT_TRUE(fs::write_file_atomic(f, bad, 0600));
        auto again = connect(false, false);
        ASSERT_TRUE(again);
        auto v = again->verify({});
        bool noticed = !v || !v->problems.empty();
        auto tree = again->get_tree(*tid);
        auto chunk = again->read(id);
        EXPECT_TRUE(noticed) << f << ": verify saw nothing";
        EXPECT_FALSE(tree && chunk && *chunk == data && v && v->problems.empty()) << f;
        if (chunk) EXPECT_EQ(*chunk, data) << f << ": damaged data was read as data";
        again.reset();
        stdfs::remove(f);
        ASSERT_TRUE(fs::write_file_atomic(f, pristine, 0600));
    }
}

TEST_F(Served, AppendOnlyAddsAndReadsButNeverDeletesOrRewrites) {
    connect(false).reset(); // the owner makes the repository
    auto r = connect(true, false);
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->backend().append_only());
    std::string data = "kept";
    auto id = r->ids()(data);
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
    auto &b = r->backend();
    for (const auto &name : {std::string("snapshots/0123456789abcdef.json"), "trees/" + *tid})
        EXPECT_FALSE(b.remove(name)) << name;
    // Overwriting is refused too (a put's failure comes back at the next check).
    ASSERT_TRUE(b.put("snapshots/0123456789abcdef.json", "rewritten", true));
    EXPECT_FALSE(b.check());
    ASSERT_TRUE(b.put("keys/0011223344556677", "{}", true));
    EXPECT_FALSE(b.check()) << "the machines' key cannot add a way in";
    EXPECT_FALSE(b.create({{"config.json", "{}"}}));
    EXPECT_FALSE(b.get("../../etc/passwd")) << "names are checked on the host";
    EXPECT_EQ(r->scan_snapshots().good.size(), 1u);
}

TEST_F(Served, NoRepositoryThereIsAClearErrorWithoutCreate) {
    auto b = backend(false, "none");
    ASSERT_TRUE(b);
    auto r = Repository::open(std::move(b), false, test_keys(dir));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what.find("no berth repository"), std::string::npos) << r.error().what;
    EXPECT_FALSE(stdfs::exists(dir / "none"));
}

TEST_F(Served, AWrongPassphraseOrKeyOpensNothingAndWritesNothing) {
    KeyOptions pass;
    std::string given = "right horse";
    pass.passphrase = [&](bool) -> Result<std::optional<std::string>> { return given; };
    std::string made;
    pass.created_key = &made;
    auto r = connect(false, true, pass);
    ASSERT_TRUE(r);
    EXPECT_EQ(made, "passphrase");
    EXPECT_FALSE(stdfs::exists(dir / "repo-key.json")) << "a passphrase, so no key file";
    r.reset();
    auto before = everything_on_host();
    given = "wrong horse";
    auto wrong = Repository::open(backend(false), false, pass);
    ASSERT_FALSE(wrong);
    EXPECT_NE(wrong.error().what.find("wrong passphrase"), std::string::npos);
    EXPECT_EQ(wrong.error().code, 5);
    KeyOptions none;
    auto no = Repository::open(backend(false), false, none);
    ASSERT_FALSE(no);
    EXPECT_NE(no.error().what.find("passphrase"), std::string::npos) << no.error().what;
    KeyOptions other;
    other.key = MasterKey::random();
    auto another = Repository::open(backend(false), false, other);
    ASSERT_FALSE(another);
    EXPECT_NE(another.error().what.find("does not open"), std::string::npos);
    EXPECT_EQ(everything_on_host(), before) << "a failed open wrote something";
    given = "right horse";
    auto ok = Repository::open(backend(false), false, pass);
    ASSERT_TRUE(ok) << ok.error().what;
    // A second passphrase, then the first removed: the new one opens it, the old one no more.
    auto added = (*ok)->add_passphrase("second horse");
    ASSERT_TRUE(added);
    ASSERT_TRUE((*ok)->remove_key((*ok)->opened_with()));
    EXPECT_FALSE((*ok)->remove_key(*added)) << "the last key is never removed";
    ok->reset();
    EXPECT_FALSE(Repository::open(backend(false), false, pass));
    given = "second horse";
    EXPECT_TRUE(Repository::open(backend(false), false, pass));
}
