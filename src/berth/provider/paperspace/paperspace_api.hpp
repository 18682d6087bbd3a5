// Paperspace API v1 (api.paperspace.com/v1), as requests and answers
// (../shared/paperspace/SPEC.md §4.1, §8). Translation only: the engine retries and prints.
#pragma once

#include "provider/provider.hpp"
#include "util/http.hpp"

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace berth::paperspace {

struct Credentials {
    std::string api_key;  // never printed, logged, or put on a command line
    std::string base_url; // https://api.paperspace.com/v1, or the replica's
    std::string source;   // where the key came from, for messages ("PAPERSPACE_API_KEY")
};

// --api-key-file (a file, or - for stdin), then PAPERSPACE_API_KEY, then pspace's
// ~/.paperspace/credentials.toml (the key of the team named in ~/.paperspace/config.toml, or
// its only key), then the legacy ~/.paperspace/config.json ({"apiKey": ...}). The URL:
// PAPERSPACE_API_URL, else https://api.paperspace.com/v1.
Result<Credentials> load_credentials(const std::string &key_file);

// METHOD base_url + path with the key as a Bearer token and a JSON body (pspace sends "{}"
// for a PATCH without one).
http::Request request(const Credentials &c, const std::string &method, const std::string &path,
                      const nlohmann::json &body = nullptr);

// The answer as JSON: fails on a non-2xx status, on a body that does not parse, and on an
// error body ({code, message}, at most 3 keys) even under 200, as the official client does.
// `what` names the call.
Result<nlohmann::json> parse(const http::Response &r, const std::string &what);

// Machine types and prices (compiled from the recorded data; see catalog.cpp).
struct MachineType {
    std::string label, gpu_name; // "P4000", "Quadro P4000" ("none" for CPU types)
    int gpu_count;
    double gpu_memory_gb;
    int vcpus;
    double ram_gb, price_per_hour;
    std::vector<std::string> regions; // "NY2", "CA1", "AMS1"
};
struct DiskTier {
    double size_gb, per_hour, max_per_month;
};
const std::vector<MachineType> &machine_types();
const std::vector<DiskTier> &disk_tiers();
const MachineType *find_type(const std::string &label); // case-insensitive
double disk_per_hour(double gb);                        // the tier that holds gb
inline constexpr double public_ip_per_hour = 0.0045;
// "NY2" from "NY2", "ny2" or "East Coast (NY2)"; "" when unknown.
std::string region_code(const std::string &spelling);

// A machine of the API as berth sees it (state mapped; money from the machine's rates).
MachineInfo to_machine(const nlohmann::json &m);

} // namespace berth::paperspace
