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

// --api-key-file (a file, or - for stdin), then VAST_API_KEY, then the official CLI's
// $XDG_CONFIG_HOME/vastai/vast_api_key. The URL: VAST_URL (the official CLI's variable), else
// https://console.vast.ai.
Result<Credentials> load_credentials(const std::string &key_file);

// POST /api/v0/bundles/ with the query object (an explicit limit inside it).
http::Request search_request(const Credentials &c, const nlohmann::json &query);

// The checks every search answer passes before parsing (status, exact Content-Type), and the
// error for a body that is not an offer list.
Result<> check_search_answer(const http::Response &r);
Error not_an_offer_list();

// Offers from a search response; fails on a wrong Content-Type or a malformed body, never
// "no offers" for an answer that is not one. Parsed with simdjson: a 10,000-offer answer is
// 23 MB. With `keep`, each offer carries only those fields (what a table needs), which is
// most of the speed; without, every field.
Result<std::vector<nlohmann::json>> parse_search(const http::Response &r,
                                                 const std::vector<std::string> *keep = nullptr);

// An API error response as one line ("Invalid user key (auth_error, HTTP 401)").
std::string describe_error(const http::Response &r);

// A provider-neutral Offer from a raw Vast offer.
Offer to_offer(nlohmann::json raw);

// Any other call: METHOD base_url + path, Bearer auth, a JSON body when given.
http::Request api_request(const Credentials &c, const std::string &method, const std::string &path,
                          const nlohmann::json &body = nullptr);

// A JSON object from an answer: fails on a non-2xx status (with the API's own words), a wrong
// Content-Type, or a body that does not parse as an object. `what` names the call.
Result<nlohmann::json> parse_object(const http::Response &r, const std::string &what);

// The body of PUT /api/v0/asks/{id}/ as the official CLI sends it (SPEC §3), for an ssh
// machine with a direct port when the host has one. `price` is the bid: null is on-demand.
nlohmann::json create_body(const InstanceSpec &spec);

// The onstart berth gives its machines: keeps the container's own environment (CONTAINER_ID,
// CONTAINER_API_KEY), which SSH sessions do not inherit, for the max-hours watchdog.
std::string berth_onstart();

// Where to SSH (SPEC §5, the CLI's ssh-url): ports["22/tcp"] on public_ipaddr when mapped,
// else ssh_host:ssh_port, plus 1 when the runtype has jupyter. Port 0: not known yet.
SshEndpoint ssh_endpoint(const nlohmann::json &row);

// One instance row as berth sees it: actual_status mapped to a MachineState (exited, unknown
// and offline, or an "Error" in status_msg, are final: `exited` with the reason), money, label.
MachineInfo parse_instance(const nlohmann::json &row, double now);

} // namespace berth::vast
