// The migration engine on real directories: move, merge, recover, copy back.
#include "agent/migrate.hpp"
#include "agent/persist.hpp"
#include "util/fs.hpp"
#include "util/tree.hpp"

#include <fstream>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace berth;
namespace stdfs = std::filesystem;

namespace {

struct Sandbox : ::testing::Test {
    stdfs::path dir, home;
    Store store;
    MigrationObserver obs;
    void SetUp() override {
        char tmpl[] = "/tmp/berth-mig-XXXXXX";
        dir = ::mkdtemp(tmpl);
        home = dir / "home";
        store.root = dir / "store";
        stdfs::create_directories(home);
        stdfs::create_directories(store.root);
        ASSERT_TRUE(store.prepare());
    }
    void TearDown() override { stdfs::remove_all(dir); }
    void write(const stdfs::path &p, const std::string &s) {
        stdfs::create_directories(p.parent_path());
        std::ofstream(p) << s;
    }
    std::string read(const stdfs::path &p) { return *fs::read_file(p); }
    bool is_link_to_store(const std::string &rel) {
        return stdfs::is_symlink(home / rel) &&
               stdfs::read_symlink(home / rel) == store.cfg() / rel;
    }
};

} // namespace

TEST_F(Sandbox, MigratesRealDirectoryAndLinks) {
    write(home / ".local/lib/python3.11/site-packages/pkg/__init__.py", "x = 1\n");
    Migrator m(store, home, obs);
    auto r = m.link({".local", ItemKind::dir});
    ASSERT_TRUE(r) << r.error().line();
    EXPECT_EQ(r->action, LinkAction::migrated);
    EXPECT_TRUE(is_link_to_store(".local"));
    EXPECT_EQ(read(home / ".local/lib/python3.11/site-packages/pkg/__init__.py"), "x = 1\n");
    EXPECT_FALSE(stdfs::exists(home / "..local.berth-old"));
    EXPECT_FALSE(stdfs::exists(home / ".local.berth-old"));
    auto again = m.link({".local", ItemKind::dir});
    ASSERT_TRUE(again);
    EXPECT_EQ(again->action, LinkAction::linked);
}

TEST_F(Sandbox, MergeKeepsStoreVersionAndSavesOursAsConflict) {
    write(store.cfg() / ".config/app/settings", "from store");
    write(store.cfg() / ".config/app/only-store", "s");
    write(home / ".config/app/settings", "from image");
    write(home / ".config/app/only-home", "h");
    Migrator m(store, home, obs);
    auto r = m.link({".config", ItemKind::dir});
    ASSERT_TRUE(r) << r.error().line();
    EXPECT_EQ(r->action, LinkAction::merged);
    EXPECT_EQ(r->conflicts, 1u);
    EXPECT_EQ(read(home / ".config/app/settings"), "from store");
    EXPECT_EQ(read(home / ".config/app/only-home"), "h");
    EXPECT_EQ(read(home / ".config/app/only-store"), "s");
    EXPECT_EQ(read(stdfs::path(r->conflicts_dir) / "app/settings"), "from image");
    EXPECT_TRUE(stdfs::path(r->conflicts_dir).string().starts_with(store.conflicts().string()));
}

TEST_F(Sandbox, FileItemsAreCreatedWithPrivateModes) {
    Migrator m(store, home, obs);
    ASSERT_TRUE(m.link({".git-credentials", ItemKind::file}));
    struct stat st {};
    ASSERT_EQ(::stat((store.cfg() / ".git-credentials").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ASSERT_TRUE(m.link({".ssh", ItemKind::dir}));
    ASSERT_EQ(::stat((store.cfg() / ".ssh").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(Sandbox, DanglingLinkRepairedForeignLinkLeftAloneLoopRefused) {
    stdfs::create_symlink(dir / "gone", home / ".kaggle");
    write(dir / "elsewhere/x", "mine");
    stdfs::create_symlink(dir / "elsewhere", home / ".fastai");
    stdfs::create_symlink(home / ".loop", home / ".loop");
    Migrator m(store, home, obs);
    auto k = m.link({".kaggle", ItemKind::dir});
    ASSERT_TRUE(k);
    EXPECT_EQ(k->action, LinkAction::repaired);
    EXPECT_TRUE(is_link_to_store(".kaggle"));
    auto f = m.link({".fastai", ItemKind::dir});
    ASSERT_TRUE(f);
    EXPECT_EQ(f->action, LinkAction::foreign_link);
    EXPECT_EQ(stdfs::read_symlink(home / ".fastai"), dir / "elsewhere");
    auto l = m.link({".loop", ItemKind::dir});
    ASSERT_FALSE(l);
    EXPECT_NE(l.error().what.find("symlink loop"), std::string::npos);
}

TEST_F(Sandbox, FastaiStyleTrailingSlashLinkCountsAsLinked) {
    write(store.cfg() / ".local/x", "1");
    stdfs::create_symlink(store.cfg().string() + "/.local/", home / ".local");
    Migrator m(store, home, obs);
    auto r = m.link({".local", ItemKind::dir});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->action, LinkAction::linked);
}

TEST_F(Sandbox, RecoversFromAsideLeftByCrash) {
    // State after a kill between "move aside" and "link": store complete, original aside.
    write(store.cfg() / ".jupyter/a", "A");
    write(home / ".jupyter.berth-old-not-ours/z", "unrelated");
    write(home / "..jupyter.berth-old/a", "A");
    Migrator m(store, home, obs);
    auto r = m.link({".jupyter", ItemKind::dir});
    ASSERT_TRUE(r) << r.error().line();
    EXPECT_EQ(r->action, LinkAction::recovered);
    EXPECT_TRUE(is_link_to_store(".jupyter"));
    EXPECT_FALSE(stdfs::exists(home / "..jupyter.berth-old"));
    EXPECT_TRUE(stdfs::exists(home / ".jupyter.berth-old-not-ours/z"));
}

TEST_F(Sandbox, PartialIncomingCopyIsDroppedOnlyWhileOriginalIsIntact) {
    write(home / ".ipython/profile", "p");
    write(store.cfg() / "..ipython.berth-incoming/profile", "partial");
    Migrator m(store, home, obs);
    auto r = m.link({".ipython", ItemKind::dir});
    ASSERT_TRUE(r) << r.error().line();
    EXPECT_EQ(r->action, LinkAction::migrated);
    EXPECT_EQ(read(home / ".ipython/profile"), "p");
    EXPECT_FALSE(stdfs::exists(store.cfg() / "..ipython.berth-incoming"));

    // No original left anywhere: the partial copy is the only data, so it is kept.
    write(store.cfg() / "..conda.berth-incoming/env", "only copy");
    auto c = m.link({".conda", ItemKind::dir});
    ASSERT_FALSE(c);
    EXPECT_TRUE(stdfs::exists(store.cfg() / "..conda.berth-incoming/env"));
}

TEST_F(Sandbox, UnlinkCopiesBackAndKeepsStoreCopy) {
    write(home / ".kaggle/kaggle.json", "{\"key\":1}");
    Migrator m(store, home, obs);
    ASSERT_TRUE(m.link({".kaggle", ItemKind::dir}));
    auto u = m.unlink({".kaggle", ItemKind::dir}, false);
    ASSERT_TRUE(u) << u.error().line();
    EXPECT_FALSE(stdfs::is_symlink(home / ".kaggle"));
    EXPECT_EQ(read(home / ".kaggle/kaggle.json"), "{\"key\":1}");
    EXPECT_FALSE(stdfs::exists(store.cfg() / ".kaggle"));
    EXPECT_EQ(read(stdfs::path(u->store_copy) / "kaggle.json"), "{\"key\":1}");
}

TEST_F(Sandbox, PersistAddRefusesOverlapAndOutsideHome) {
    MigrationObserver o;
    ASSERT_TRUE(persist_add(store, home, "~/.cache/huggingface", ItemKind::dir, o));
    auto overlap = persist_add(store, home, home.string() + "/.cache", ItemKind::dir, o);
    ASSERT_FALSE(overlap);
    EXPECT_NE(overlap.error().what.find("overlaps"), std::string::npos);
    auto outside = persist_add(store, home, "/etc", ItemKind::dir, o);
    ASSERT_FALSE(outside);
    EXPECT_EQ(outside.error().code, 2);
}

TEST_F(Sandbox, StatusReportsDrift) {
    MigrationObserver o;
    ASSERT_TRUE(persist_init(store, home, o));
    stdfs::remove(home / ".jupyter");
    write(home / ".jupyter/lab/settings", "re-created by an installer");
    auto st = persist_status(store, home);
    ASSERT_TRUE(st);
    bool seen = false;
    for (const auto &i : st->items)
        if (i.item.path == ".jupyter") {
            seen = true;
            EXPECT_EQ(i.state, ItemState::drifted);
        }
    EXPECT_TRUE(seen);
    auto run = persist_restore(store, home, o, std::chrono::milliseconds(0));
    ASSERT_TRUE(run);
    EXPECT_TRUE(run->ok());
    EXPECT_TRUE(is_link_to_store(".jupyter"));
    EXPECT_EQ(read(home / ".jupyter/lab/settings"), "re-created by an installer");
}
