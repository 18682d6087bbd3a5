// Fuzz: the readers of every repository file (snapshot JSON, tree objects, index files, the
// config) fed random and mutated bytes, in-process, a few thousand times each. Every outcome
// must be a value or an error: no exception, no crash, no huge allocation, no hang.
#include "store/compress.hpp"
#include "store/repo_sink.hpp"
#include "store/repository.hpp"
#include "store/save.hpp"
#include "util/fs.hpp"

#include "store_keys.hpp"
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>
#include <random>
#include <unistd.h>

using namespace berth;
using namespace berth::store;
namespace stdfs = std::filesystem;

namespace {

std::string mutate(std::string s, std::mt19937_64 &g) {
    switch (g() % 6) {
    case 0: // flip bits
        for (int i = 0, n = 1 + g() % 8; i < n && !s.empty(); ++i)
            s[g() % s.size()] ^= static_cast<char>(1u << (g() % 8));
        break;
    case 1: // truncate
        s.resize(s.empty() ? 0 : g() % s.size());
        break;
    case 2: // random bytes over a stretch
        for (std::size_t i = s.empty() ? 0 : g() % s.size(), n = g() % 64; i < s.size() && n;
             ++i, --n)
            s[i] = static_cast<char>(g());
        break;
    case 3: // a huge number where a length lives
        if (s.size() > 16) {
            std::uint64_t big = ~0ull >> (g() % 40);
            std::memcpy(s.data() + g() % (s.size() - 8), &big, 8);
        }
        break;
    case 4: // duplicate a stretch
        if (!s.empty()) s.insert(g() % s.size(), s.substr(g() % s.size(), g() % 200));
        break;
    default: // pure noise
        s.assign(g() % 512, '\0');
        for (auto &c : s)
            c = static_cast<char>(g());
    }
    return s;
}

struct Fuzz : ::testing::Test {
    stdfs::path dir;
    void SetUp() override {
        char tmpl[] = "/tmp/berth-fuzz-XXXXXX";
        dir = ::mkdtemp(tmpl);
        ::setenv("BERTH_CACHE_DIR", (dir / "cache").c_str(), 1);
    }
    void TearDown() override {
        ::unsetenv("BERTH_CACHE_DIR");
        stdfs::remove_all(dir);
    }
};

} // namespace

TEST(FuzzReaders, TreeAndSnapshotParsersNeverThrow) {
    Tree t;
    for (int i = 0; i < 20; ++i) {
        Entry e{"dir/file" + std::to_string(i), EntryType::file, 0644, 123, 4096, 0, 0, {}, {}};
        e.chunks.resize(i % 3);
        t.entries.push_back(e);
    }
    t.entries.push_back({"link", EntryType::symlink, 0777, 0, 0, 0, 0, "/storage", {}});
    std::string tree = serialize(t);
    Snapshot s{"0123456789abcdef",
               "2026-12-01T10:00:00.000000Z",
               "h",
               "src",
               {"a"},
               std::string(64, 'a'),
               "",
               1,
               2,
               3,
               4};
    std::string snap = snapshot_json(s);
    std::mt19937_64 g(7);
    int parsed = 0, refused = 0;
    for (int i = 0; i < 5000; ++i) {
        auto tr = parse_tree(mutate(tree, g));
        auto sn = parse_snapshot(mutate(snap, g));
        (tr ? parsed : refused)++;
        (sn ? parsed : refused)++;
        if (tr) (void)check_tree(*tr);
        std::uint8_t flags = static_cast<std::uint8_t>(g() % 3);
        auto d = decompress(mutate(std::string(300, 'x'), g), flags, g() % (1u << 30));
        (void)d;
    }
    EXPECT_GT(refused, 1000) << "the mutations should break most inputs";
    EXPECT_GT(parsed, 0);
}

TEST_F(Fuzz, RepositoryFilesMutatedOnDiskAreReportedNotFatal) {
    auto repo_r = Repository::open(dir / "repo", true, test_keys(dir));
    ASSERT_TRUE(repo_r) << repo_r.error().what;
    auto &repo = *repo_r;
    stdfs::create_directories(dir / "ws/d");
    std::ofstream(dir / "ws/d/a.txt") << std::string(200000, 'a');
    std::ofstream(dir / "ws/b.bin") << "bbbbbbbbbb";
    stdfs::create_symlink("/storage", dir / "ws/storage");
    SaveOptions opt;
    opt.root = dir / "ws";
    opt.chunker = repo->chunker();
    opt.ids = repo->ids();
    RepoSink sink(*repo, false, "");
    auto st = save_tree(opt, sink);
    ASSERT_TRUE(st) << st.error().what;
    ASSERT_TRUE(repo->commit());
    auto tree = finish_tree(sink.entries);
    ASSERT_TRUE(tree);
    auto tid = repo->put_tree(*tree);
    ASSERT_TRUE(tid);
    Snapshot s{
        "0123456789abcdef", "2026-12-01T10:00:00.000000Z", "h", "src", {}, *tid, "", 2, 0, 0, 0};
    ASSERT_TRUE(repo->put_snapshot(s));
    // The files to damage, with their pristine bytes.
    std::vector<stdfs::path> files = {dir / "repo/snapshots/0123456789abcdef.json",
                                      dir / "repo/trees" / *tid, dir / "repo/config.json"};
    for (const auto &e : stdfs::directory_iterator(dir / "repo/index"))
        files.push_back(e.path());
    std::vector<std::string> pristine;
    for (const auto &f : files)
        pristine.push_back(*fs::read_file(f));
    std::mt19937_64 g(11);
    int reported = 0;
    for (int i = 0; i < 600; ++i) {
        std::size_t k = g() % files.size();
        std::ofstream(files[k], std::ios::binary | std::ios::trunc) << mutate(pristine[k], g);
        auto rr = Repository::open(dir / "repo", false, test_keys(dir));
        if (rr) {
            auto &r = *rr;
            auto v = r->verify(nullptr);
            if (v && !v->problems.empty()) ++reported;
            (void)r->find_snapshot("latest");
            auto t = r->get_tree(*tid);
            if (t) {
                auto out = dir / ("out" + std::to_string(i));
                (void)restore_tree(
                    *t, *tid, out, [&](const ChunkId &id) { return r->read(id); }, "", nullptr);
                stdfs::remove_all(out);
            }
        } else {
            ++reported;
        }
        std::ofstream(files[k], std::ios::binary | std::ios::trunc) << pristine[k];
    }
    EXPECT_GT(reported, 300) << "most damage must be noticed";
    auto clean_r = Repository::open(dir / "repo", false, test_keys(dir));
    ASSERT_TRUE(clean_r) << clean_r.error().what;
    auto &clean = *clean_r;
    auto v = clean->verify(nullptr);
    ASSERT_TRUE(v);
    EXPECT_TRUE(v->problems.empty()) << v->problems.front();
}
