#include "core/config.hpp"

#include <cstdlib>
#include <fstream>
#include <gtest/gtest.h>
#include <unistd.h>

using namespace berth;

namespace {
struct TempFile {
    std::filesystem::path path;
    explicit TempFile(const std::string &content) {
        char tmpl[] = "/tmp/berth-cfg-XXXXXX";
        int fd = ::mkstemp(tmpl);
        ::close(fd);
        path = tmpl;
        std::ofstream(path) << content;
    }
    ~TempFile() { std::filesystem::remove(path); }
};
} // namespace

TEST(Config, DefaultsFileEnvAndCommandLineInOrder) {
    TempFile f("store = \"/data/store\"\nplan = \"growth\"\n[keys]\ntest_host = \"gitlab.com\"\n");
    ::setenv("BERTH_PLAN", "free", 1);
    auto c = Config::load(f.path);
    ::unsetenv("BERTH_PLAN");
    ASSERT_TRUE(c) << c.error().what;
    EXPECT_EQ(c->get("store").value, "/data/store");
    EXPECT_EQ(c->get("store").origin, "file " + f.path.string());
    EXPECT_EQ(c->get("plan").value, "free");
    EXPECT_EQ(c->get("plan").origin, "env BERTH_PLAN");
    EXPECT_EQ(c->get("keys.test_host").value, "gitlab.com");
    EXPECT_EQ(c->get("notebooks_dir").origin, "default");
    ASSERT_TRUE(c->set_override("plan", "pro"));
    EXPECT_EQ(c->get("plan").origin, "command line");
    EXPECT_DOUBLE_EQ(c->number("storage_overage_per_gb_month"), 0.29);
}

TEST(Config, UnknownKeySuggests) {
    TempFile f("stor = \"/x\"\n");
    auto c = Config::load(f.path);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().what.find("unknown config key 'stor'"), std::string::npos);
    EXPECT_NE(c.error().fix.find("did you mean 'store'"), std::string::npos);
}

TEST(Config, BadValuesAndSyntaxNameTheProblem) {
    TempFile f("quota_gb = \"lots\"\n");
    auto c = Config::load(f.path);
    ASSERT_FALSE(c);
    EXPECT_NE(c.error().what.find("quota_gb must be a number"), std::string::npos);
    TempFile g("store = \n");
    auto d = Config::load(g.path);
    ASSERT_FALSE(d);
    EXPECT_NE(d.error().what.find("line 1"), std::string::npos);
    TempFile h("plan = \"platinum\"\n");
    EXPECT_FALSE(Config::load(h.path));
}

TEST(Config, WriteKeyKeepsOtherKeys) {
    TempFile f("plan = \"free\"\n");
    ASSERT_TRUE(Config::write_key(f.path, "keys.test_host", "example.org"));
    ASSERT_TRUE(Config::write_key(f.path, "quota_gb", "20"));
    auto c = Config::load(f.path);
    ASSERT_TRUE(c) << c.error().what;
    EXPECT_EQ(c->str("plan"), "free");
    EXPECT_EQ(c->str("keys.test_host"), "example.org");
    EXPECT_DOUBLE_EQ(c->number("quota_gb"), 20);
    EXPECT_FALSE(Config::write_key(f.path, "nope", "1"));
    EXPECT_EQ(config_env_name("keys.test_host"), "BERTH_KEYS_TEST_HOST");
}
