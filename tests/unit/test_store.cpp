// Snapshots: chunker properties, tree format, unsafe trees, repository round trips and crashes.
#include "store/chunker.hpp"
#include "store/compress.hpp"
#include "store/repo_sink.hpp"
#include "store/repository.hpp"
#include "store/save.hpp"
#include "util/fs.hpp"

#include "store_keys.hpp"
#include <fstream>

#include <gtest/gtest.h>
#include <random>
#include <unistd.h>

using namespace berth;
using namespace berth::store;
namespace stdfs = std::filesystem;

namespace {

std::vector<std::uint8_t> random_bytes(std::size_t n, unsigned seed) {
    std::mt19937_64 g(seed);
    std::vector<std::uint8_t> v(n);
    for (auto &b : v)
        b = static_cast<std::uint8_t>(g());
    return v;
}

std::vector<std::size_t> cuts(const std::vector<std::uint8_t> &d) {
    std::vector<std::size_t> out;
    std::size_t off = 0;
    while (off < d.size()) {
        std::size_t c = find_cut(d.data() + off, d.size() - off, true);
        off += c;
        out.push_back(off);
    }
    return out;
}

struct TempDir : ::testing::Test {
    stdfs::path dir;
    void SetUp() override {
        char tmpl[] = "/tmp/berth-store-XXXXXX";
        dir = ::mkdtemp(tmpl);
        ::setenv("BERTH_CACHE_DIR", (dir / "cache").c_str(), 1);
    }
    void TearDown() override {
        ::unsetenv("BERTH_CACHE_DIR");
        stdfs::remove_all(dir);
    }
    void write(const stdfs::path &p, const std::string &s) {
        stdfs::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary) << s;
    }
};

} // namespace

TEST(Chunker, SizesStayWithinBoundsAndNearTheAverage) {
    auto d = random_bytes(32 << 20, 1);
    auto c = cuts(d);
    ChunkerParams p;
    std::size_t prev = 0;
    for (std::size_t i = 0; i < c.size(); ++i) {
        std::size_t len = c[i] - prev;
        if (i + 1 < c.size()) {
            EXPECT_GE(len, p.min);
            EXPECT_LE(len, p.max);
        }
        prev = c[i];
    }
    double avg = static_cast<double>(d.size()) / static_cast<double>(c.size());
    EXPECT_GT(avg, p.avg * 0.6);
    EXPECT_LT(avg, p.avg * 1.6);
}

TEST(Chunker, AnEditMovesOnlyNearbyCuts) {
    auto d = random_bytes(16 << 20, 2);
    auto before = cuts(d);
    auto e = d;
    e.insert(e.begin() + (8 << 20), 1000, 0x42); // 1000 bytes inserted in the middle
    auto after = cuts(e);
    std::size_t shared = 0;
    for (auto c : before) {
        std::size_t shifted = c > (8u << 20) ? c + 1000 : c;
        if (std::find(after.begin(), after.end(), shifted) != after.end()) ++shared;
    }
    EXPECT_GE(shared + 3, before.size()); // all but the cuts around the edit survive
}

TEST(Chunker, NeedsMoreDataWithoutEof) {
    auto d = random_bytes(1 << 20, 3);
    ChunkerParams p;
    EXPECT_EQ(find_cut(d.data(), 100, false, p), 0u);
    EXPECT_EQ(find_cut(d.data(), 100, true, p), 100u);
}

TEST(Compress, IncompressibleIsStoredRawAndTextShrinks) {
    auto r = random_bytes(1 << 20, 4);
    std::uint8_t flags = 9;
    auto out = compress(std::string_view(reinterpret_cast<char *>(r.data()), r.size()), flags);
    EXPECT_EQ(flags, k_raw);
    EXPECT_EQ(out.size(), r.size());
    std::string text(1 << 20, 'a');
    auto z = compress(text, flags);
    EXPECT_EQ(flags, k_zstd);
    EXPECT_LT(z.size(), text.size() / 10);
    EXPECT_EQ(*decompress(z, flags, text.size()), text);
    EXPECT_FALSE(decompress(z, flags, text.size() + 1));
}

TEST(Tree, RoundTripsAndRejectsDamage) {
    Tree t;
    Entry e;
    e.path = "a/b.txt";
    e.mode = 0644;
    e.size = 5;
    e.mtime_ns = 123456789;
    e.chunks.push_back(sha256_id("hello", 5));
    t.entries.push_back(e);
    Entry l;
    l.path = "a/link";
    l.type = EntryType::symlink;
    l.target = "b.txt";
    t.entries.push_back(l);
    auto bytes = serialize(t);
    auto back = parse_tree(bytes);
    ASSERT_TRUE(back);
    ASSERT_EQ(back->entries.size(), 2u);
    EXPECT_EQ(back->entries[0].chunks[0], e.chunks[0]);
    EXPECT_EQ(back->entries[1].target, "b.txt");
    EXPECT_FALSE(parse_tree(bytes.substr(0, bytes.size() - 7)));
    EXPECT_FALSE(parse_tree("garbage"));
}

// Links are data (issue 10: the seed's `storage -> /storage` must be saved): their targets
// are not judged; paths are, and so is anything placed beneath a link.
TEST(Tree, UnsafePathsAndEntriesBeneathLinksAreRefused) {
    auto bad = [](std::string path, EntryType type = EntryType::file, std::string target = "") {
        Tree t;
        Entry e;
        e.path = std::move(path);
        e.type = type;
        e.target = std::move(target);
        t.entries.push_back(e);
        return !check_tree(t);
    };
    EXPECT_TRUE(bad("../etc/passwd"));
    EXPECT_TRUE(bad("/etc/passwd"));
    EXPECT_TRUE(bad("a/../../x"));
    EXPECT_TRUE(bad("a//b"));
    EXPECT_FALSE(bad("storage", EntryType::symlink, "/storage"));
    EXPECT_FALSE(bad("a/link", EntryType::symlink, "../../etc"));
    EXPECT_FALSE(bad("a/link", EntryType::symlink, "../b/c"));
    EXPECT_TRUE(bad("a/link", EntryType::symlink, ""));
    EXPECT_FALSE(bad("notebooks/x.ipynb"));
    Tree t;
    t.entries = {{"esc", EntryType::symlink, 0777, 0, 0, 0, 0, "p/q/l/../../../victimdir", {}},
                 {"esc/planted", EntryType::file, 0644, 0, 0, 0, 0, {}, {}},
                 {"p/q/l", EntryType::symlink, 0777, 0, 0, 0, 0, "../..", {}}};
    auto r = check_tree(t);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what.find("beneath the symlink 'esc'"), std::string::npos);
    Tree twice;
    twice.entries = {{"a", EntryType::file, 0644, 0, 0, 0, 0, {}, {}},
                     {"a", EntryType::dir, 0755, 0, 0, 0, 0, {}, {}}};
    EXPECT_FALSE(check_tree(twice));
}

TEST_F(TempDir, SaveRestoreDedupAndUnchangedFilesAreNotRead) {
    auto repo_r = Repository::open(dir / "repo", true, test_keys(dir));
    ASSERT_TRUE(repo_r) << repo_r.error().what;
    auto &repo = *repo_r;
    auto blob = random_bytes(3 << 20, 5);
    write(dir / "ws/data.bin", std::string(blob.begin(), blob.end()));
    write(dir / "ws/copy.bin", std::string(blob.begin(), blob.end())); // a duplicate file
    write(dir / "ws/notes.txt", std::string(100000, 'n'));
    SaveOptions opt;
    opt.root = dir / "ws";
    opt.chunker = repo->chunker();
    opt.ids = repo->ids();
    opt.cache_file = cache_file_for(repo->id(), opt.root, {});
    RepoSink sink(*repo, false, "");
    auto st = save_tree(opt, sink);
    ASSERT_TRUE(st) << st.error().what;
    ASSERT_TRUE(repo->commit());
    EXPECT_EQ(st->new_bytes, blob.size() + 100000); // the copy cost nothing
    auto tree = finish_tree(sink.entries);
    ASSERT_TRUE(tree);
    auto tid = repo->put_tree(*tree);
    ASSERT_TRUE(tid);
    EXPECT_EQ(*tid, st->tree_id);

    // Second save with the parent: nothing is read.
    SaveOptions again = opt;
    again.parent = &*tree;
    again.parent_tree_id = *tid;
    RepoSink sink2(*repo, false, "");
    auto st2 = save_tree(again, sink2);
    ASSERT_TRUE(st2);
    EXPECT_EQ(st2->bytes_read, 0u);
    EXPECT_EQ(st2->tree_id, *tid);

    // Restore elsewhere: identical bytes, and the restore's cache makes its next save read nothing.
    auto got = repo->get_tree(*tid);
    ASSERT_TRUE(got);
    auto out = dir / "out";
    auto rs = restore_tree(
        *got, *tid, out, [&](const ChunkId &id) { return repo->read(id); },
        cache_file_for(repo->id(), out, {}), nullptr);
    ASSERT_TRUE(rs) << rs.error().what;
    EXPECT_EQ(*fs::read_file(out / "data.bin"), std::string(blob.begin(), blob.end()));
    SaveOptions from_out = opt;
    from_out.root = out;
    from_out.parent = &*got;
    from_out.parent_tree_id = *tid;
    from_out.cache_file = cache_file_for(repo->id(), out, {});
    RepoSink sink3(*repo, false, "");
    auto st3 = save_tree(from_out, sink3);
    ASSERT_TRUE(st3);
    EXPECT_EQ(st3->bytes_read, 0u);
}

TEST_F(TempDir, MaliciousTreeWritesNothingOutsideTarget) {
    Tree t;
    Entry ok{"fine.txt", EntryType::file, 0644, 0, 0, 0, 0, {}, {}};
    Entry evil{"../escaped.txt", EntryType::file, 0644, 0, 0, 0, 0, {}, {}};
    t.entries = {ok, evil};
    auto r = restore_tree(
        t, "", dir / "target", [](const ChunkId &) -> Result<std::string> { return std::string(); },
        "", nullptr);
    ASSERT_FALSE(r);
    EXPECT_FALSE(stdfs::exists(dir / "escaped.txt"));
    EXPECT_FALSE(stdfs::exists(dir / "target/fine.txt")); // refused before anything was written

    // A directory in the target that is really a symlink out is not followed.
    stdfs::create_directories(dir / "target2");
    stdfs::create_directories(dir / "outside");
    stdfs::create_directory_symlink(dir / "outside", dir / "target2/sub");
    Tree t2;
    Entry through{"sub/planted.txt", EntryType::file, 0644, 0, 0, 0, 0, {}, {}};
    t2.entries = {through};
    auto r2 = restore_tree(
        t2, "", dir / "target2",
        [](const ChunkId &) -> Result<std::string> { return std::string(); }, "", nullptr);
    ASSERT_FALSE(r2);
    EXPECT_FALSE(stdfs::exists(dir / "outside/planted.txt"));
}

TEST_F(TempDir, DamagedChunkIsDetectedOnReadAndVerify) {
    auto repo_r = Repository::open(dir / "repo", true, test_keys(dir));
    ASSERT_TRUE(repo_r) << repo_r.error().what;
    auto &repo = *repo_r;
    auto d = random_bytes(1 << 20, 6);
    auto id = repo->ids()(d.data(), d.size());
    ASSERT_TRUE(repo->add(id, static_cast<std::uint32_t>(d.size()), k_raw,
                          std::string_view(reinterpret_cast<char *>(d.data()), d.size())));
    ASSERT_TRUE(repo->commit());
    for (const auto &e : stdfs::recursive_directory_iterator(dir / "repo/data")) {
        if (!e.is_regular_file()) continue;
        std::fstream f(e.path(), std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(1000);
        f.put('\x00');
        f.put('\x01');
    }
    auto again_r = Repository::open(dir / "repo", false, test_keys(dir));
    ASSERT_TRUE(again_r) << again_r.error().what;
    auto &again = *again_r;
    EXPECT_FALSE(again->read(id));
    auto v = again->verify(nullptr);
    ASSERT_TRUE(v);
    EXPECT_EQ(v->problems.size(), 1u);
}

TEST_F(TempDir, PruneDropsUnreferencedAndOrphanPacks) {
    auto repo_r = Repository::open(dir / "repo", true, test_keys(dir));
    ASSERT_TRUE(repo_r) << repo_r.error().what;
    auto &repo = *repo_r;
    auto d = random_bytes(4096, 7);
    auto id = repo->ids()(d.data(), d.size());
    ASSERT_TRUE(
        repo->add(id, 4096, k_raw, std::string_view(reinterpret_cast<char *>(d.data()), d.size())));
    ASSERT_TRUE(repo->commit());
    write(dir / "repo/data/ff/ffff-orphan", "a pack a killed save left without an index");
    auto rep = repo->prune(); // no snapshot references the chunk
    ASSERT_TRUE(rep);
    EXPECT_EQ(rep->packs_removed, 1u);
    EXPECT_EQ(rep->orphan_packs, 1u);
    EXPECT_FALSE(repo->has(id));
}

TEST_F(TempDir, RefusesNonEmptyNonRepository) {
    write(dir / "notrepo/file", "x");
    auto r = Repository::open(dir / "notrepo", true, test_keys(dir));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what.find("not empty"), std::string::npos);
    EXPECT_FALSE(Repository::open(dir / "missing", false, test_keys(dir)));
}
