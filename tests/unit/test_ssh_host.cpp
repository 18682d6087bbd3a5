// The ssh provider's parsers: what the user types as a host, what the host answers to the
// probe, and machine ids. Every value here reaches a command line or a shell: hostile input
// must be refused, not quoted around.
#include "provider/ssh/host_provider.hpp"

#include <gtest/gtest.h>

using namespace berth;
namespace sh = berth::sshhost;

TEST(SshHost, ParsesDestinations) {
    auto a = sh::parse_dest("lab");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->host, "lab");
    EXPECT_EQ(a->user, "");
    EXPECT_EQ(a->port, 0);
    auto b = sh::parse_dest("ana@gpu-box.example.org:2222");
    ASSERT_TRUE(b);
    EXPECT_EQ(b->user, "ana");
    EXPECT_EQ(b->host, "gpu-box.example.org");
    EXPECT_EQ(b->port, 2222);
    EXPECT_EQ(b->text, "ana@gpu-box.example.org:2222");
}

TEST(SshHost, RefusesHostileDestinations) {
    for (const char *bad : {"", "lab;rm -rf ~", "-oProxyCommand=sh", "lab:0", "lab:99999",
                            "lab:", "@lab", "a b", "lab$(id)", "ana@", "lab:22x", "us'er@lab"}) {
        auto d = sh::parse_dest(bad);
        EXPECT_FALSE(d) << bad;
        if (!d) {
            EXPECT_EQ(d.error().code, 2) << bad;
        }
    }
    EXPECT_FALSE(sh::parse_dest(std::string(300, 'a')));
}

TEST(SshHost, ParsesTheProbe) {
    auto p =
        sh::parse_probe("arch x86_64\nhome /home/ana\ncpus 16\nmem 65536000\nfree 104857600\n"
                        "gpu NVIDIA GeForce RTX 4090, 24564\ngpu NVIDIA GeForce RTX 4090, 24564\n");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->arch, "x86_64");
    EXPECT_EQ(p->home, "/home/ana");
    EXPECT_EQ(p->cpus, 16);
    EXPECT_NEAR(p->free_gb, 100.0, 1e-9);
    ASSERT_EQ(p->gpus.size(), 2u);
    EXPECT_EQ(p->gpus[0].first, "NVIDIA GeForce RTX 4090");
    EXPECT_NEAR(p->gpus[0].second, 24564 / 1024.0, 1e-9);
}

TEST(SshHost, RefusesABadProbe) {
    EXPECT_FALSE(sh::parse_probe(""));
    EXPECT_FALSE(sh::parse_probe("arch x86_64\n"));                       // no home
    EXPECT_FALSE(sh::parse_probe("arch x86_64\nhome relative/dir\n"));    // not absolute
    EXPECT_FALSE(sh::parse_probe("arch x86_64\nhome /home/$(reboot)\n")); // shell in it
    EXPECT_FALSE(sh::parse_probe("arch x86_64\nhome /home/../etc\n"));
    // Garbage lines are ignored, not trusted.
    auto p = sh::parse_probe("motd: welcome!\narch x86_64\nhome /root\ngpu broken-line\n");
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->gpus.empty());
}

TEST(SshHost, MachineIdsRoundTrip) {
    auto id = sh::machine_id("s1", "ana@lab:2222");
    EXPECT_EQ(id, "s1@ana@lab:2222");
    auto back = sh::parse_id(id);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->first, "s1");
    EXPECT_EQ(back->second.user, "ana");
    EXPECT_EQ(back->second.port, 2222);
    EXPECT_FALSE(sh::parse_id("S1@lab"));        // not a berth name
    EXPECT_FALSE(sh::parse_id("s1"));            // no host
    EXPECT_FALSE(sh::parse_id("../x@lab"));      // a path
    EXPECT_FALSE(sh::parse_id("s1@lab;reboot")); // a shell
}

TEST(SshHost, CapabilitiesSayWhatStopAndDestroyDo) {
    auto c = ssh_host_capabilities();
    EXPECT_FALSE(c.billed);
    EXPECT_TRUE(c.bootstrap_over_ssh);
    EXPECT_TRUE(c.destroy_loses.empty()); // the user's files are not berth's to lose
    EXPECT_FALSE(c.lists_machines);
}
