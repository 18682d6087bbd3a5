// The query language's filters evaluated on any provider's offers, not only on Vast.ai's
// server: a parsed query is a neutral filter ({"num_gpus":{"gte":"4"}, ...}, the wire form of
// offers/query.hpp), and an offer is its fields in the same names and units.
//
// Semantics follow the API's: values that look like numbers compare as numbers (the server
// coerces the CLI's strings), strings compare exactly (gpu_name "RTX 4090"), booleans as
// booleans; in/notin test membership; a field the offer does not have fails every filter
// except neq/notin, so a local offer never passes `dlperf>10` by having no dlperf.
#pragma once

#include <nlohmann/json.hpp>

namespace berth::offers {

// The filter part of a search body (order, type, limit and allocated_storage removed).
nlohmann::json filter_of(const nlohmann::json &search);

// Whether the offer (fields in the query language's names) passes every filter.
bool matches(const nlohmann::json &filter, const nlohmann::json &fields);

} // namespace berth::offers
