// Pure logic of the agent: hook splicing, key classification, ssh diagnosis, paths.
#include "agent/doctor.hpp"
#include "agent/hooks.hpp"
#include "agent/keys.hpp"
#include "agent/manifest.hpp"
#include "core/config.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

using namespace berth;

static const char *k_fastai_prerun = R"(#!/usr/bin/env bash
pushd ~
mkdir -p /storage/cfg
for p in .local .ssh .config
do
        rm -rf ~/$p
        ln -s /storage/cfg/$p ~/
done
popd
)";

TEST(Hooks, BlockGoesFirstAndUserLinesStayByteForByte) {
    Store s{"/storage"};
    auto block = paperspace_block(s, "/storage/.berth/bin/berth");
    auto out = splice_block(k_fastai_prerun, block, true);
    EXPECT_EQ(out.rfind("#!/usr/bin/env bash\n# >>> berth >>>", 0), 0u);
    EXPECT_EQ(remove_block(out), k_fastai_prerun);
    // Installing twice replaces the block instead of adding another.
    auto twice = splice_block(out, block, true);
    EXPECT_EQ(twice, out);
}

TEST(Hooks, SourcedBlockCannotExitOrFailItsParent) {
    auto block = paperspace_block(Store{"/storage"}, "/storage/.berth/bin/berth");
    EXPECT_EQ(block.find("exit"), std::string::npos);
    EXPECT_NE(block.find("( '/storage/.berth/bin/berth' persist restore"), std::string::npos);
    EXPECT_NE(block.find("|| true"), std::string::npos);
    EXPECT_NE(block.find("</dev/null"), std::string::npos);
    EXPECT_NE(block.find(".local/bin:$PATH"), std::string::npos);
}

TEST(Hooks, NewFileGetsShebangAndAppendModeKeepsText) {
    auto b = bashrc_block(Store{"/s"}, "/s/.berth/bin/berth");
    EXPECT_EQ(splice_block("", b, true).rfind("#!/usr/bin/env bash\n", 0), 0u);
    auto appended = splice_block("alias ll='ls -l'", b, false);
    EXPECT_EQ(appended.rfind("alias ll='ls -l'\n# >>> berth", 0), 0u);
}

TEST(Hooks, FindsFastaiDestructiveLoop) {
    auto lines = destructive_lines(k_fastai_prerun);
    ASSERT_EQ(lines.size(), 1u);
    EXPECT_EQ(lines[0], "rm -rf ~/$p");
    EXPECT_TRUE(destructive_lines("rm -rf /tmp/cache\n# rm -rf ~/x\n").empty());
}

TEST(Hooks, SystemdUnitRunsRestoreOnce) {
    auto u = systemd_unit(Store{"/mnt/store"}, "/mnt/store/.berth/bin/berth", "/home/ana", true);
    EXPECT_NE(u.find("Type=oneshot"), std::string::npos);
    EXPECT_NE(u.find("RequiresMountsFor=/mnt/store"), std::string::npos);
    EXPECT_NE(u.find("ExecStart=/mnt/store/.berth/bin/berth persist restore --store /mnt/store "
                     "--home /home/ana"),
              std::string::npos);
    EXPECT_NE(u.find("WantedBy=multi-user.target"), std::string::npos);
}

TEST(Keys, ClassifiesByContentNotName) {
    EXPECT_EQ(classify_key_text(
                  "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----\n"),
              KeyText::private_key);
    EXPECT_EQ(classify_key_text("-----BEGIN RSA PRIVATE KEY-----\n"), KeyText::private_key);
    EXPECT_EQ(classify_key_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMq me@x\n"),
              KeyText::public_key);
    EXPECT_EQ(classify_key_text("ecdsa-sha2-nistp256 AAAAE2Vj me\n"), KeyText::public_key);
    EXPECT_EQ(classify_key_text("hello world"), KeyText::unknown);
}

TEST(Keys, GithubGreetingWithExitOneIsSuccess) {
    auto r = diagnose_ssh(
        1, "Hi ana! You've successfully authenticated, but GitHub does not provide shell access.\n",
        "", "github.com");
    EXPECT_EQ(r.cause, KeyTestCause::ok);
}

TEST(Keys, NamesEachFailureCause) {
    EXPECT_EQ(diagnose_ssh(255, "",
                           "debug1: Authentications that can continue: publickey\n"
                           "git@github.com: Permission denied (publickey).\n",
                           "github.com")
                  .cause,
              KeyTestCause::no_key_offered);
    EXPECT_EQ(diagnose_ssh(
                  255, "",
                  "debug1: Offering public key: /root/.ssh/id_ed25519 ED25519 SHA256:x explicit\n"
                  "git@github.com: Permission denied (publickey).\n",
                  "github.com")
                  .cause,
              KeyTestCause::key_not_registered);
    EXPECT_EQ(diagnose_ssh(255, "",
                           "@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n"
                           "Host key verification failed.\n",
                           "github.com")
                  .cause,
              KeyTestCause::host_key_changed);
    EXPECT_EQ(diagnose_ssh(255, "", "Host key verification failed.\n", "h").cause,
              KeyTestCause::host_key_unknown);
    EXPECT_EQ(
        diagnose_ssh(255, "", "ssh: connect to host 127.0.0.1 port 1: Connection refused\n", "h")
            .cause,
        KeyTestCause::network);
    EXPECT_EQ(diagnose_ssh(255, "",
                           "ssh: Could not resolve hostname nope: Name or service not known\n",
                           "nope")
                  .cause,
              KeyTestCause::network);
}

TEST(Manifest, NormalisesPathsUnderHomeOnly) {
    Store s{"/storage"};
    EXPECT_EQ(*normalise_item_path("~/.local", "/root", s), ".local");
    EXPECT_EQ(*normalise_item_path("/root/.cache/huggingface/", "/root", s), ".cache/huggingface");
    EXPECT_EQ(*normalise_item_path(".kaggle", "/root", s), ".kaggle");
    auto outside = normalise_item_path("/etc/passwd", "/root", s);
    ASSERT_FALSE(outside);
    EXPECT_NE(outside.error().what.find("outside your home"), std::string::npos);
    EXPECT_FALSE(normalise_item_path("~/../etc", "/root", s));
    EXPECT_FALSE(normalise_item_path("~", "/root", s));
    EXPECT_FALSE(normalise_item_path("/storage/x", "/", Store{"/storage"}));
}

TEST(Manifest, DefaultsIncludeWhatFastaiForgot) {
    Manifest m{default_items()};
    for (const char *p :
         {".local", ".ssh", ".config", ".ipython", ".fastai", ".jupyter", ".conda", ".kaggle",
          ".cache/huggingface", ".git-credentials", ".gitconfig", ".bash_history"})
        EXPECT_NE(m.find(p), nullptr) << p;
    EXPECT_EQ(m.find(".gitconfig")->kind, ItemKind::file);
    EXPECT_NE(m.overlapping(".cache/huggingface/hub"), nullptr);
    EXPECT_NE(m.overlapping(".cache"), nullptr);
    EXPECT_EQ(m.overlapping(".cache/torch"), nullptr);
}

TEST(Doctor, PlanQuotas) {
    EXPECT_EQ(plan_quota_gb("free"), 5);
    EXPECT_EQ(plan_quota_gb("pro"), 15);
    EXPECT_EQ(plan_quota_gb("growth"), 50);
}

TEST(Store, FindsStorageOrNamesTheFix) {
    char tmpl[] = "/tmp/berth-root-XXXXXX";
    std::filesystem::path root = ::mkdtemp(tmpl);
    auto none = find_store("", root);
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().fix.find("--store"), std::string::npos);
    std::filesystem::create_directory(root / "storage");
    auto found = find_store("", root);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->root, root / "storage");
    EXPECT_FALSE(find_store((root / "missing").string(), root));
    std::filesystem::remove_all(root);
}

TEST(Doctor, PackagesHiddenByAPythonUpgradeAreNamedWithTheFix) {
    char tmpl[] = "/tmp/berth-doc-XXXXXX";
    std::filesystem::path home = ::mkdtemp(tmpl);
    std::filesystem::create_directories(
        home / ".local/lib/python3.2/site-packages/fastcore-1.5.29.dist-info");
    std::filesystem::create_directories(home /
                                        ".local/lib/python3.2/site-packages/timm-0.9.dist-info");
    EXPECT_EQ(user_site_versions(home), std::vector<std::string>{"3.2"});
    auto cfg = Config::load(home / "none.toml");
    ASSERT_TRUE(cfg);
    DoctorInput in;
    in.config = &*cfg;
    in.home = home;
    in.store = (home / "no-store").string();
    in.python = "python3";
    bool seen = false;
    for (const auto &c : run_doctor(in)) {
        if (c.id != "python") continue;
        seen = true;
        EXPECT_EQ(c.status, CheckStatus::warn);
        EXPECT_NE(c.message.find("Python 3.2"), std::string::npos) << c.message;
        EXPECT_NE(c.fix.find("-m pip install --user fastcore timm"), std::string::npos) << c.fix;
    }
    EXPECT_TRUE(seen);
    std::filesystem::remove_all(home);
}
