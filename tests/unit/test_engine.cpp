// State database, names, local offers, ssh config: the client-side logic under `berth up`.
#include "engine/lifecycle.hpp"
#include "provider/local/local_provider.hpp"
#include "provider/registry.hpp"
#include "remote/ssh.hpp"
#include "state/state.hpp"
#include "util/fs.hpp"

#include <cstdlib>
#include <gtest/gtest.h>
#include <unistd.h>

using namespace berth;
namespace stdfs = std::filesystem;

namespace {
struct TempData : ::testing::Test {
    stdfs::path dir;
    void SetUp() override {
        char tmpl[] = "/tmp/berth-eng-XXXXXX";
        dir = ::mkdtemp(tmpl);
        ::setenv("XDG_DATA_HOME", dir.c_str(), 1);
    }
    void TearDown() override {
        ::unsetenv("XDG_DATA_HOME");
        stdfs::remove_all(dir);
    }
};
} // namespace

TEST_F(TempData, StateRoundTripsRecordsAndIntents) {
    auto db = StateDb::open(dir / "state.db");
    ASSERT_TRUE(db) << db.error().what;
    InstanceRecord r;
    r.name = "gpu1";
    r.provider = "local";
    r.provider_id = "gpu1";
    r.status = Status::creating;
    r.ssh_port = 2222;
    r.tunnel_port = 8888;
    ASSERT_TRUE(db->put(r));
    auto i = db->intend("gpu1", "create", "local");
    ASSERT_TRUE(i);
    auto pending = db->intents("gpu1");
    ASSERT_EQ(pending->size(), 1u);
    EXPECT_EQ((*pending)[0].state, "pending"); // written before the provider is asked
    ASSERT_TRUE(db->finish(*i, true));
    ASSERT_TRUE(db->set_status("gpu1", Status::running, "ready"));
    auto got = db->get("gpu1");
    ASSERT_TRUE(got && *got);
    EXPECT_EQ((*got)->status, Status::running);
    EXPECT_EQ((*got)->message, "ready");
    EXPECT_EQ((*got)->ssh_port, 2222);
    EXPECT_EQ((*got)->tunnel_port, 8888);
    EXPECT_EQ((*db->intents("gpu1"))[0].state, "done");
    EXPECT_FALSE(*db->get("nope"));
    // Reopening migrates nothing and keeps the data.
    auto again = StateDb::open(dir / "state.db");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->list()->size(), 1u);
}

TEST_F(TempData, FindSuggestsNearNames) {
    auto db = StateDb::open(dir / "state.db");
    InstanceRecord r;
    r.name = "workspace";
    r.provider = "local";
    ASSERT_TRUE(db->put(r));
    Engine e(*db, builtin_registry(), [](const std::string &) {});
    auto f = e.find("worksapce");
    ASSERT_FALSE(f);
    EXPECT_NE(f.error().what.find("no instance named 'worksapce'"), std::string::npos);
    EXPECT_NE(f.error().fix.find("did you mean 'workspace'"), std::string::npos);
}

TEST(Engine, NamesAreHostnameSafe) {
    EXPECT_TRUE(validate_name("gpu-1"));
    EXPECT_TRUE(validate_name("a"));
    EXPECT_FALSE(validate_name("Bad_Name"));
    EXPECT_FALSE(validate_name("-x"));
    EXPECT_FALSE(validate_name(""));
    EXPECT_FALSE(validate_name(std::string(41, 'a')));
    EXPECT_EQ(validate_name("a b").error().code, 2);
}

TEST(LocalProvider, HostGpusBecomeOffers) {
    auto offers = LocalProvider::parse_nvidia_smi(
        "NVIDIA GeForce RTX 4090, 24564\nNVIDIA GeForce RTX 4090, 24564\n"
        "NVIDIA A100-SXM4-80GB, 81920\n");
    ASSERT_EQ(offers.size(), 2u);
    EXPECT_EQ(offers[1].gpu_name, "NVIDIA GeForce RTX 4090");
    EXPECT_EQ(offers[1].gpu_count, 2);
    EXPECT_NEAR(offers[1].vram_gb, 24.0, 0.1);
    EXPECT_EQ(offers[0].provider, "local");
    EXPECT_TRUE(LocalProvider::parse_nvidia_smi("").empty());
}

TEST_F(TempData, SshPinsAndConfigAndInclude) {
    ASSERT_TRUE(ssh::pin_host_key("berth-a", "ssh-ed25519 AAAAkeyA berth-a"));
    ASSERT_TRUE(ssh::pin_host_key("berth-b", "ssh-ed25519 AAAAkeyB"));
    ASSERT_TRUE(ssh::pin_host_key("berth-a", "ssh-ed25519 AAAAkeyA2"));
    auto kh = *fs::read_file(ssh::known_hosts_file());
    EXPECT_EQ(kh, "berth-b ssh-ed25519 AAAAkeyB\nberth-a ssh-ed25519 AAAAkeyA2\n");
    ASSERT_TRUE(ssh::unpin("berth-b"));
    EXPECT_EQ(*fs::read_file(ssh::known_hosts_file()), "berth-a ssh-ed25519 AAAAkeyA2\n");

    ASSERT_TRUE(ssh::write_config({{"berth-a", "127.0.0.1", 2222, "root"}}));
    auto cfg = *fs::read_file(ssh::config_file());
    EXPECT_NE(cfg.find("Host berth-a\n  HostName 127.0.0.1\n  Port 2222\n  User root\n"),
              std::string::npos);
    EXPECT_NE(cfg.find("StrictHostKeyChecking yes"), std::string::npos);

    auto user = dir / "dotssh/config";
    stdfs::create_directories(user.parent_path());
    ASSERT_TRUE(fs::write_file_atomic(user, "Host old\n  User me\n", 0600));
    EXPECT_TRUE(*ssh::install_include(user));
    EXPECT_FALSE(*ssh::install_include(user)); // idempotent
    auto text = *fs::read_file(user);
    EXPECT_EQ(text.find("# added by berth\nInclude"), 0u);
    EXPECT_NE(text.find("Host old\n  User me\n"), std::string::npos);
    auto opts = ssh::options({"berth-a", "127.0.0.1", 2222, "root"});
    EXPECT_NE(std::find(opts.begin(), opts.end(), "HostKeyAlias=berth-a"), opts.end());
    EXPECT_EQ(std::find(opts.begin(), opts.end(), "StrictHostKeyChecking=no"), opts.end());
}
