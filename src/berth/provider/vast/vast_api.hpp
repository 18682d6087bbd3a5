// The Vast.ai consumer API, as requests and responses (../shared/vastai/SPEC.md). Translation
// only: the engine retries and prints.
#pragma once

#include "provider/provider.hpp"
#include "util/http.hpp"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace berth::vast {

struct Credentials {
    std::string api_key;  // never printed, logged, or put on a command line
    std::string base_url; // https://console.vast.ai, or the replica
};

// --api-key, then VAST_API_KEY, then the official CLI's $XDG_CONFIG_HOME/vastai/vast_api_key.
// The URL: VAST_URL (the official CLI's variable), else https://console.vast.ai.
Result<Credentials> load_credentials(const std::string &flag_key);

// POST /api/v0/bundles/ with the query object (an explicit limit inside it).
http::Request search_request(const Credentials &c, const nlohmann::json &query);

// Offers from a search response; fails on a wrong Content-Type or a malformed body, never
// "no offers" for an answer that is not one.
Result<std::vector<nlohmann::json>> parse_search(const http::Response &r);

// An API error response as one line ("Invalid user key (auth_error, HTTP 401)").
std::string describe_error(const http::Response &r);

// A provider-neutral Offer from a raw Vast offer.
Offer to_offer(const nlohmann::json &raw);

} // namespace berth::vast
