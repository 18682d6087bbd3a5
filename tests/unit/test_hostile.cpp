// Input from outside, as a broken server or an attacker sends it: the query parser's bounds
// and speed, reading JSON of the wrong shape, API error bodies, instance rows with wrong
// types, and the neutral filter applied to every provider's offers.
#include "core/json_read.hpp"
#include "offers/filter.hpp"
#include "offers/query.hpp"
#include "provider/local/local_provider.hpp"
#include "provider/vast/vast_api.hpp"

#include <gtest/gtest.h>

using namespace berth;
using nlohmann::json;

TEST(QueryBounds, HugeValuesAndListsAreRefusedWithoutCrashing) {
    json q = json::object();
    auto r = offers::parse_query("gpu_name=" + std::string(28000, 'A'), q);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, 2);
    EXPECT_NE(r.error().what.find("characters long"), std::string::npos);
    std::string list = "id in [";
    for (int i = 0; i < 300; ++i)
        list += std::to_string(i) + ",";
    list += "1]";
    q = json::object();
    auto l = offers::parse_query(list, q);
    ASSERT_FALSE(l);
    EXPECT_NE(l.error().what.find("items"), std::string::npos);
    q = json::object();
    EXPECT_FALSE(offers::parse_query(std::string(4000, '['), q));
    q = json::object();
    auto u = offers::parse_query("gpu_name=\xff\xfe", q);
    ASSERT_FALSE(u);
    EXPECT_NE(u.error().what.find("UTF-8"), std::string::npos);
}

TEST(QueryBounds, TheScannerKeepsTheCliMeaning) {
    json q = json::object();
    ASSERT_TRUE(offers::parse_query(
        "num_gpus = 1 gpu_ram>=16  gpu_name in [RTX_3090,RTX_4090] reliability gt 0.9 "
        "geolocation not in [CN] cuda_vers=\"12.1\"",
        q));
    EXPECT_EQ(q["num_gpus"], (json{{"eq", "1"}}));
    EXPECT_EQ(q["gpu_ram"], (json{{"gte", 16000.0}}));
    EXPECT_EQ(q["gpu_name"], (json{{"in", {"RTX 3090", "RTX 4090"}}}));
    EXPECT_EQ(q["reliability"], (json{{"gt", "0.9"}}));
    EXPECT_EQ(q["geolocation"], (json{{"notin", {"CN"}}}));
    EXPECT_EQ(q["cuda_max_good"], (json{{"eq", "12.1"}}));
    q = json::object();
    auto bad = offers::parse_query("num_gpus=1 )", q);
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().what.find("at ')'"), std::string::npos);
}

TEST(Filter, LocalOffersAreFilteredByTheSameQuery) {
    json q = offers::default_filters();
    ASSERT_TRUE(offers::parse_query("num_gpus>=4", q));
    auto none = LocalProvider::local_offer("local-0", "none", 0, 0);
    EXPECT_FALSE(offers::matches(q, none.fields())) << "a 0-GPU host passed num_gpus>=4";
    auto four = LocalProvider::local_offer("local-0", "RTX 4090", 4, 24);
    EXPECT_TRUE(offers::matches(q, four.fields()));
    json g = json::object();
    ASSERT_TRUE(offers::parse_query("gpu_name=RTX_4090 gpu_ram>=16 dlperf>10", g));
    EXPECT_FALSE(offers::matches(g, four.fields())) << "no dlperf is not dlperf>10";
    json n = json::object();
    ASSERT_TRUE(offers::parse_query("gpu_name in [RTX_4090,A100] gpu_ram>=16", n));
    EXPECT_TRUE(offers::matches(n, four.fields()));
    json ne = json::object();
    ASSERT_TRUE(offers::parse_query("gpu_name!=RTX_4090", ne));
    EXPECT_FALSE(offers::matches(ne, four.fields()));
}

TEST(JsonRead, WrongTypesNeverThrow) {
    json j = json::parse(R"({"id":"123","is_bid":null,"n":"4.5","big":1e300,"s":5,
                             "bad":[1],"neg":-3,"f":2.0,"t":"true"})");
    EXPECT_EQ(jsonr::id(j, "id"), "123");
    EXPECT_FALSE(jsonr::boolean(j, "is_bid"));
    EXPECT_TRUE(jsonr::boolean(j, "t"));
    EXPECT_DOUBLE_EQ(jsonr::num(j, "n"), 4.5);
    EXPECT_EQ(jsonr::text(j, "s"), "5");
    EXPECT_EQ(jsonr::text(j, "bad", "d"), "d");
    EXPECT_EQ(jsonr::integer(j, "f"), 2);
    EXPECT_EQ(jsonr::id(j, "neg"), "");
    EXPECT_EQ(jsonr::id(j, "big"), "");
    EXPECT_EQ(jsonr::num(json::array(), "x", 7), 7);
    auto r = jsonr::require_id(j, "bad", "the answer");
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::malformed);
    EXPECT_NE(r.error().what.find("field 'bad'"), std::string::npos);
    EXPECT_EQ(jsonr::clean_text("ok\xff\xfe", 100), "ok??");
    EXPECT_EQ(jsonr::clean_text(std::string(5000, 'a'), 10).size(), 10u);
    EXPECT_EQ(jsonr::clean_text("-----BEGIN KEY-----\nabc\n", 100), "-----BEGIN KEY-----\nabc\n")
        << "data keeps its newlines (a key, a known_hosts block)";
    EXPECT_EQ(jsonr::clean_line("a\x1b[2Jb\nc\x7f\xc2\x9b"
                                "1m\xc3\xa9",
                                100),
              "a?[2Jb?c??1m\xc3\xa9")
        << "escape, newline, DEL and C1 CSI go; UTF-8 stays";
}

TEST(VastHostile, ErrorBodiesOfAnyShapeBecomeOneLine) {
    http::Response r{422, R"({"detail":[{"msg":"field required","loc":["body"]}]})",
                     "application/json"};
    EXPECT_EQ(vast::describe_error(r), "field required (HTTP 422)");
    r.body = R"({"msg":5,"error":["x"]})";
    EXPECT_NE(vast::describe_error(r).find("HTTP 422"), std::string::npos);
    r.body = "not json";
    EXPECT_NE(vast::describe_error(r).find("unexpected answer"), std::string::npos);
    r.status = 404;
    r.body = "{}";
    auto p = vast::parse_object(r, "instance 1");
    ASSERT_FALSE(p);
    EXPECT_EQ(p.error().kind, ErrorKind::not_found);
}

TEST(VastHostile, InstanceRowsWithWrongTypesParse) {
    auto m = vast::parse_instance(json::parse(R"({"id":"abc","actual_status":5,"ssh_port":"lots",
        "public_ipaddr":["-oProxyCommand=x"],"ports":{"22/tcp":[{"HostPort":"99999"}]},
        "is_bid":null,"label":7,"dph_base":"x"})"),
                                  0);
    EXPECT_EQ(m.id, "");
    EXPECT_EQ(m.ssh.port, 0);
    EXPECT_EQ(m.rent_per_hour, 0);
    auto e = vast::ssh_endpoint(json::parse(
        R"({"public_ipaddr":"-oProxyCommand=touch","ports":{"22/tcp":[{"HostPort":"2222"}]},
            "ssh_host":"ssh5.vast.ai","ssh_port":"1234"})"));
    EXPECT_EQ(e.host, "ssh5.vast.ai") << "a host that is an ssh option is no host";
    EXPECT_EQ(e.port, 1234);
    auto o =
        vast::to_offer(json::parse(R"({"id":"123","is_bid":null,"num_gpus":"x","gpu_name":5})"));
    EXPECT_EQ(o.id, "123");
    EXPECT_EQ(o.gpu_count, 0);
    EXPECT_EQ(o.gpu_name, "5");
}
