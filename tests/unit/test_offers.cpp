// Golden tests of the query language against the wire forms in ../shared/vastai/SPEC.md §2.
#include "offers/query.hpp"

#include <gtest/gtest.h>

using namespace berth::offers;
using nlohmann::json;

static json parse(const std::string &q) {
    json j = json::object();
    auto r = parse_query(q, j);
    EXPECT_TRUE(r) << (r ? "" : r.error().line());
    return j;
}

TEST(Query, TheWireCaptureBodyExactly) {
    SearchRequest r;
    r.query = "num_gpus=1 gpu_ram>=16 reliability>0.98 gpu_name=RTX_3090";
    r.order = "dph+";
    r.limit = 5;
    auto body = build_search(r);
    ASSERT_TRUE(body);
    // The recorded request of `vastai search offers '...' -o 'dph+' --limit 5` (wire capture line
    // 1).
    auto want = json::parse(
        R"({"verified": {"eq": true}, "external": {"eq": false}, "rentable": {"eq": true},
        "rented": {"eq": false}, "num_gpus": {"eq": "1"}, "gpu_ram": {"gte": 16000.0}, "reliability": {"gt": "0.98"},
        "gpu_name": {"eq": "RTX 3090"}, "order": [["dph_total", "asc"]], "type": "on-demand", "limit": 5,
        "allocated_storage": 5.0})");
    EXPECT_EQ(*body, want);
}

TEST(Query, SpecWireForms) {
    EXPECT_EQ(parse("geolocation in [TW,SE]")["geolocation"], json::parse(R"({"in":["TW","SE"]})"));
    EXPECT_EQ(parse("dph<0.5")["dph_total"], json::parse(R"({"lt":"0.5"})"));
    EXPECT_EQ(parse("cuda_vers>=12.1")["cuda_max_good"], json::parse(R"({"gte":"12.1"})"));
    EXPECT_EQ(parse("driver_version >= 535.86.05")["driver_version"],
              json::parse(R"({"gte":535086005})"));
    EXPECT_EQ(parse("duration>7")["duration"], json::parse(R"({"gt":604800.0})"));
    EXPECT_EQ(parse("gpu_name in [\"RTX 4090\", \"RTX 3090\"]")["gpu_name"],
              json::parse(R"({"in":["RTX 4090","RTX 3090"]})"));
    EXPECT_EQ(parse("gpu_ram>=16 gpu_ram<=24")["gpu_ram"],
              json::parse(R"({"gte":16000.0,"lte":24000.0})"));
    EXPECT_EQ(parse("verified=True")["verified"], json::parse(R"({"eq":true})"));
    EXPECT_EQ(parse("num_gpus gte 2")["num_gpus"], json::parse(R"({"gte":"2"})"));
    EXPECT_EQ(parse("geolocation not in [CN]")["geolocation"], json::parse(R"({"notin":["CN"]})"));
    EXPECT_EQ(parse("gpu_name != RTX_3090")["gpu_name"], json::parse(R"({"neq":"RTX 3090"})"));
}

TEST(Query, AnyDropsTheFilterIncludingDefaults) {
    json j = default_filters();
    ASSERT_TRUE(parse_query("verified=any rented=*", j));
    EXPECT_FALSE(j.contains("verified"));
    EXPECT_FALSE(j.contains("rented"));
    EXPECT_TRUE(j.contains("rentable"));
    json k = json::object();
    EXPECT_FALSE(parse_query("verified>any", k));
}

TEST(Query, ErrorsNameTheToken) {
    json j = json::object();
    auto r = parse_query("gpu_ram>=16 gpu_rma>=4", j);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what.find("gpu_rma"), std::string::npos);
    EXPECT_NE(r.error().fix.find("gpu_ram"), std::string::npos);
    EXPECT_EQ(r.error().code, 2);
    auto u = parse_query("num_gpus=1 ) junk", j);
    ASSERT_FALSE(u);
    EXPECT_NE(u.error().what.find(")"), std::string::npos);
    EXPECT_FALSE(parse_query("num_gpus", j));      // no operator
    EXPECT_FALSE(parse_query("gpu_ram>=lots", j)); // a multiplied field needs a number
    EXPECT_FALSE(parse_query("driver_version>=5.x", j));
}

TEST(Query, OrderSyntax) {
    EXPECT_EQ(*parse_order("dph+"), json::parse(R"([["dph_total","asc"]])"));
    EXPECT_EQ(*parse_order("dlperf_per_dphtotal-"),
              json::parse(R"([["dlperf_per_dphtotal","desc"]])"));
    EXPECT_EQ(*parse_order("score-,dph"), json::parse(R"([["score","desc"],["dph_total","asc"]])"));
    EXPECT_FALSE(parse_order("prise-"));
    SearchRequest r;
    r.type = "interruptible";
    r.no_default = true;
    EXPECT_EQ((*build_search(r))["type"], "bid");
    EXPECT_FALSE((*build_search(r)).contains("verified"));
    r.type = "spot";
    EXPECT_FALSE(build_search(r));
}

TEST(Query, NumericVersion) {
    EXPECT_EQ(*numeric_version("535.86.05"), 535086005);
    EXPECT_EQ(*numeric_version("535.183.01"), 535183001);
    EXPECT_FALSE(numeric_version("535.1234.1"));
}
