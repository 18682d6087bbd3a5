// The Vast.ai provider's translation (SPEC §3-§5, §8) and berth's ledger: pure functions.
#include "engine/ledger.hpp"
#include "provider/vast/vast_api.hpp"

#include <gtest/gtest.h>

using namespace berth;
using nlohmann::json;

TEST(VastSsh, DirectPortWhenMappedElseTheProxy) {
    // SPEC §5: ports["22/tcp"] on public_ipaddr first (HostPort is a string).
    json row = {{"public_ipaddr", "174.95.30.134"},
                {"ports", {{"22/tcp", {{{"HostIp", "0.0.0.0"}, {"HostPort", "40022"}}}}}},
                {"ssh_host", "ssh4.vast.ai"},
                {"ssh_port", 11610},
                {"image_runtype", "ssh_direc ssh_proxy"}};
    auto e = vast::ssh_endpoint(row);
    EXPECT_EQ(e.host, "174.95.30.134");
    EXPECT_EQ(e.port, 40022);
    EXPECT_EQ(e.user, "root");
    row.erase("ports");
    e = vast::ssh_endpoint(row);
    EXPECT_EQ(e.host, "ssh4.vast.ai");
    EXPECT_EQ(e.port, 11610);
    // The proxy port is one higher for a jupyter runtype (vast-cli #79, fixed by PR #85).
    row["image_runtype"] = "jupyter_proxy ssh_proxy";
    EXPECT_EQ(vast::ssh_endpoint(row).port, 11611);
}

TEST(VastInstance, StatesAndTheirReasons) {
    auto st = [](json row) { return vast::parse_instance(row, 1000.0).state; };
    json base = {{"id", 7}, {"intended_status", "running"}};
    json r = base;
    r["actual_status"] = nullptr;
    EXPECT_EQ(st(r), MachineState::provisioning);
    r["actual_status"] = "loading";
    r["status_msg"] = "59729b65119e: Pull complete\n";
    EXPECT_EQ(st(r), MachineState::loading);
    r["status_msg"] = "Error response from daemon: no space left";
    EXPECT_EQ(st(r), MachineState::exited) << "an Error in status_msg never reaches running";
    for (const char *bad : {"exited", "unknown", "offline"}) {
        r = base;
        r["actual_status"] = bad;
        auto m = vast::parse_instance(r, 1000.0);
        EXPECT_EQ(m.state, MachineState::exited) << bad;
        EXPECT_NE(m.message.find(bad), std::string::npos) << m.message;
    }
    r = base;
    r["actual_status"] = "stopped";
    r["intended_status"] = "stopped";
    EXPECT_EQ(st(r), MachineState::stopped);
    r["actual_status"] = "running";
    r["intended_status"] = "running";
    EXPECT_EQ(st(r), MachineState::running);
}

TEST(VastInstance, MoneyFromTheRow) {
    json r = {{"id", 7},
              {"actual_status", "running"},
              {"intended_status", "running"},
              {"dph_base", 0.3},
              {"storage_cost", 0.1},
              {"disk_space", 72.0},
              {"start_date", 500.0},
              {"uptime_mins", 2.0},
              {"is_bid", true},
              {"label", "berth:x"}};
    auto m = vast::parse_instance(r, 1000.0);
    EXPECT_DOUBLE_EQ(m.rent_per_hour, 0.3);
    EXPECT_NEAR(m.storage_per_hour, 0.1 * 72 / 720, 1e-12); // $/GB-month x GB / 720 h
    EXPECT_DOUBLE_EQ(m.created_at, 500.0);
    EXPECT_DOUBLE_EQ(m.running_since, 880.0);
    EXPECT_TRUE(m.interruptible);
    EXPECT_EQ(m.label, "berth:x");
}

TEST(VastCreate, TheBodyAlwaysStatesThePrice) {
    InstanceSpec s;
    s.name = "w";
    s.label = "berth:w";
    auto b = vast::create_body(s);
    EXPECT_EQ(b["image"], "fastdotai/fastai-course");
    EXPECT_TRUE(b.contains("price") && b["price"].is_null()) << "on-demand, said explicitly";
    EXPECT_EQ(b["disk"], 10.0);
    EXPECT_EQ(b["runtype"], "ssh_direc ssh_proxy"); // the CLI's own spelling
    EXPECT_EQ(b["label"], "berth:w");
    EXPECT_NE(b["onstart"].get<std::string>().find("CONTAINER_API_KEY"), std::string::npos);
    s.bid = 0.25;
    s.disk_gb = 40;
    b = vast::create_body(s);
    EXPECT_EQ(b["price"], 0.25);
    EXPECT_EQ(b["disk"], 40.0);
}

TEST(Ledger, IntervalsPricedByTheOneCostModel) {
    std::vector<Meter> m = {{"a", "vast", "1", "storage", 0.01, 0, 3600}, // one hour at $0.01/h
                            {"a", "vast", "1", "rent", 0.5, 600, 2400},   // half an hour at $0.5/h
                            {"b", "vast", "2", "rent", 1.0, 7200, 0},     // open: runs until now
                            {"b", "vast", "2", "storage", 0.02, 7200, 0}};
    auto l = summarize(m, 7200 + 1800);
    ASSERT_EQ(l.entries.size(), 2u);
    EXPECT_NEAR(l.entries[0].rent, 0.25, 1e-12);
    EXPECT_NEAR(l.entries[0].storage, 0.01, 1e-12);
    EXPECT_NEAR(l.entries[1].rent, 0.5, 1e-12);
    EXPECT_NEAR(l.entries[1].storage, 0.01, 1e-12);
    EXPECT_NEAR(l.burn_per_hour, 1.02, 1e-12);
    EXPECT_NEAR(l.total, 0.77, 1e-12);
}

TEST(VastSearch, KeepsAskedFieldsAndRefusesWhatIsNotAList) {
    http::Response r{
        200,
        R"({"success":true,"offers":[{"id":1,"gpu_name":"RTX 4090","dph_base":0.4,)"
        R"("extra":{"a":[1,2]}},{"id":2,"gpu_name":"A100","big":18446744073709551615}]})",
        "application/json"};
    auto all = vast::parse_search(r);
    ASSERT_TRUE(all) << all.error().line();
    ASSERT_EQ(all->size(), 2u);
    EXPECT_EQ((*all)[0]["extra"]["a"][1], 2);
    EXPECT_EQ((*all)[1]["big"].get<std::uint64_t>(), 18446744073709551615ULL);
    std::vector<std::string> keep = {"id", "dph_base"};
    auto some = vast::parse_search(r, &keep);
    ASSERT_TRUE(some);
    EXPECT_EQ((*some)[0], json({{"id", 1}, {"dph_base", 0.4}}));
    EXPECT_EQ((*some)[1], json({{"id", 2}})) << "a missing field stays missing";
    for (const char *bad :
         {R"({"offers": {}})", R"({"success": true})", "[1,2]", "{not json", R"({"offers":[1]})"}) {
        r.body = bad;
        auto p = vast::parse_search(r);
        ASSERT_FALSE(p) << bad;
        EXPECT_NE(p.error().what.find("not an offer list"), std::string::npos) << bad;
    }
    r.body = R"({"offers":[]})";
    r.content_type = "text/html";
    EXPECT_FALSE(vast::parse_search(r)) << "the exact Content-Type is required";
}

// Paperspace API v1: errors as the official client reads them, spellings, states, credentials.
#include "provider/paperspace/paperspace_api.hpp"
#include "util/fs.hpp"

#include <cstdlib>
#include <filesystem>

TEST(Paperspace, AnErrorBodyIsAnErrorEvenUnder200) {
    namespace pss = berth::paperspace;
    berth::http::Response ok{200, R"({"items":[],"hasMore":false})", "application/json"};
    EXPECT_TRUE(pss::parse(ok, "x"));
    berth::http::Response hidden{
        200, R"({"code":"CONFLICT","message":"This machine is currently starting."})",
        "application/json"};
    auto r = pss::parse(hidden, "starting machine m1");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what.find("This machine is currently starting."), std::string::npos);
    berth::http::Response conflict{409, R"({"code":"CONFLICT","message":"busy"})",
                                   "application/json"};
    EXPECT_EQ(pss::parse(conflict, "x").error().kind, berth::ErrorKind::conflict);
    berth::http::Response missing{404, R"({"code":"NOT_FOUND","message":"Not found"})",
                                  "application/json"};
    EXPECT_EQ(pss::parse(missing, "x").error().kind, berth::ErrorKind::not_found);
    berth::http::Response busy{429, R"({"code":"TOO_MANY_REQUESTS","message":"slow down"})",
                               "application/json"};
    EXPECT_TRUE(berth::transient(pss::parse(busy, "x").error()));
    berth::http::Response junk{200, "<html>", "text/html"};
    EXPECT_EQ(pss::parse(junk, "x").error().kind, berth::ErrorKind::malformed);
    // A machine whose fields happen to include code and message is not an error (4+ keys).
    berth::http::Response big{200, R"({"code":"a","message":"b","id":"c","name":"d"})",
                              "application/json"};
    EXPECT_TRUE(pss::parse(big, "x"));
}

TEST(Paperspace, SpellingsStatesAndMoney) {
    namespace pss = berth::paperspace;
    EXPECT_EQ(pss::region_code("East Coast (NY2)"), "NY2");
    EXPECT_EQ(pss::region_code("ny2"), "NY2");
    EXPECT_EQ(pss::region_code("Europe (AMS1)"), "AMS1");
    EXPECT_EQ(pss::region_code("Mars"), "");
    ASSERT_NE(pss::find_type("a100-80g"), nullptr);
    EXPECT_EQ(pss::find_type("a100-80g")->label, "A100-80G");
    EXPECT_EQ(pss::find_type("TPU"), nullptr);
    EXPECT_DOUBLE_EQ(pss::disk_per_hour(50), 0.0074);
    EXPECT_DOUBLE_EQ(pss::disk_per_hour(51), 0.0104);
    nlohmann::json m{{"id", "psabc"},
                     {"name", "berth-w1"},
                     {"state", "ready"},
                     {"publicIp", "1.2.3.4"},
                     {"usageRate", 0.51},
                     {"storageRate", 0.0074},
                     {"publicIpType", "dynamic"},
                     {"dtCreated", "2026-12-02T00:00:00.000Z"},
                     {"dtModified", "2026-12-02T00:01:00.500Z"}};
    auto i = pss::to_machine(m);
    EXPECT_EQ(i.state, berth::MachineState::running);
    EXPECT_EQ(i.label, "berth:w1");
    EXPECT_EQ(i.ssh.user, "paperspace");
    EXPECT_EQ(i.ssh.port, 22);
    EXPECT_DOUBLE_EQ(i.rent_per_hour, 0.51 + 0.0045);
    EXPECT_DOUBLE_EQ(i.running_since - i.created_at, 60.5);
    m["state"] = "off";
    EXPECT_EQ(pss::to_machine(m).state, berth::MachineState::stopped);
    EXPECT_TRUE(pss::to_machine(m).ssh.host.empty());
    m["state"] = "stopping";
    EXPECT_EQ(pss::to_machine(m).state, berth::MachineState::loading);
    m["name"] = "someone-else";
    EXPECT_EQ(pss::to_machine(m).label, "");
}

TEST(Paperspace, CredentialsInTheOrderTheCLIsKeepThem) {
    namespace pss = berth::paperspace;
    char tmpl[] = "/tmp/berth-ps-XXXXXX";
    std::filesystem::path home = ::mkdtemp(tmpl);
    const char *old_home = std::getenv("HOME");
    std::string saved_home = old_home ? old_home : "";
    ::setenv("HOME", home.c_str(), 1);
    ::unsetenv("PAPERSPACE_API_KEY");
    EXPECT_FALSE(pss::load_credentials(""));
    std::filesystem::create_directories(home / ".paperspace");
    ASSERT_TRUE(berth::fs::write_file_atomic(home / ".paperspace" / "config.json",
                                             R"({"apiKey":"legacy"})"));
    EXPECT_EQ(pss::load_credentials("")->api_key, "legacy");
    ASSERT_TRUE(
        berth::fs::write_file_atomic(home / ".paperspace" / "credentials.toml",
                                     "version = 1\n[keys]\na = \"key-a\"\nb = \"key-b\"\n"));
    ASSERT_TRUE(
        berth::fs::write_file_atomic(home / ".paperspace" / "config.toml", "team = \"b\"\n"));
    EXPECT_EQ(pss::load_credentials("")->api_key, "key-b");
    ::setenv("PAPERSPACE_API_KEY", "from-env", 1);
    EXPECT_EQ(pss::load_credentials("")->api_key, "from-env");
    ::unsetenv("PAPERSPACE_API_KEY");
    ASSERT_TRUE(
        berth::fs::write_file_atomic(home / ".paperspace" / "credentials.toml", "not [toml"));
    EXPECT_EQ(pss::load_credentials("")->api_key, "legacy") << "a damaged pspace file is skipped";
    std::filesystem::remove_all(home);
    ::setenv("HOME", saved_home.c_str(), 1);
}
