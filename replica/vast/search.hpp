// The replica's offer search: the API's filter semantics over recorded offers
// (../../shared/vastai/SPEC.md §2.2, §2.4, §10). Values in queries may be strings (the CLI sends
// numbers as strings) and are coerced; geolocation matches the two-letter code; driver_version
// compares with driver_vers; prices are recomputed for the request's allocated_storage.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace replica {

// Returns the matching offers, priced, ordered and limited as the query says.
// Throws std::invalid_argument with an API-style message on a malformed query.
// `rented` says which offers are rented now: they leave the results unless the query asks about
// `rented` itself, and show "rented": true when it does.
std::vector<nlohmann::json> search(const std::vector<nlohmann::json> &offers,
                                   const nlohmann::json &query,
                                   const std::function<bool(long long)> &rented = {});

// Recomputes the storage-dependent price fields of an offer for `allocated_gb`.
void price(nlohmann::json &offer, double allocated_gb, bool bid);

} // namespace replica
