// The vastai CLI's offer query language, exactly (../shared/vastai/SPEC.md §2.3), turned into
// the wire form the API takes (§2.2). berth is stricter than the CLI in one way: an unknown
// field is an error naming it, not a warning, because a misspelt filter silently matches
// everything.
//
//   "num_gpus=1 gpu_ram>=16 reliability>0.98 gpu_name=RTX_3090"
//     -> {"num_gpus":{"eq":"1"},"gpu_ram":{"gte":16000.0},"reliability":{"gt":"0.98"},
//         "gpu_name":{"eq":"RTX 3090"}}
// Values stay strings, as the CLI sends them (the server coerces); multiplied fields become
// numbers in MB or seconds; driver_version "535.86.05" becomes 535086005.
#pragma once

#include "util/result.hpp"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace berth::offers {

// Bounds on what a query may be: a query is typed by a person; anything longer is a mistake
// or an attack, and gets a clear error instead of seconds of work.
inline constexpr std::size_t k_max_query_length = 4096;
inline constexpr std::size_t k_max_query_terms = 64;
inline constexpr std::size_t k_max_list_items = 256;

// Parses QUERY into filters, merged into `into` (the defaults, usually). Fails with exit
// code 2 on unconsumed text, an unknown operator or field, a blank value, or a wildcard with
// an operator other than '='; the message names the token.
Result<> parse_query(const std::string &query, nlohmann::json &into);

// "dph+,dlperf_per_dphtotal-" -> [["dph_total","asc"],["dlperf_per_dphtotal","desc"]].
Result<nlohmann::json> parse_order(const std::string &order);

// verified=true external=false rentable=true rented=false, as the legacy CLI sends them.
nlohmann::json default_filters();

struct SearchRequest {
    std::string query;
    bool no_default = false;
    std::string order = "score-";
    std::string type = "on-demand"; // on-demand | bid | reserved ("interruptible" -> bid)
    int limit = 0;                  // 0: not sent
    double storage_gb = 5.0;        // allocated_storage
};

// The whole body of POST /api/v0/bundles/ in the CLI's key order.
Result<nlohmann::json> build_search(const SearchRequest &r);

// 535.86.05 -> 535086005 (zero-padded three-digit groups).
Result<long long> numeric_version(const std::string &v);

// Every field the query language accepts (offer fields plus the CLI's aliases).
const std::vector<std::string> &known_fields();

} // namespace berth::offers
