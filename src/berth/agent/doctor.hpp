// berth doctor: everything that makes an ephemeral machine feel like yours, checked, each
// problem with the command that fixes it.
#pragma once

#include "core/config.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace berth {

enum class CheckStatus { ok, info, warn, fail };

const char *check_status_name(CheckStatus s);

struct Check {
    std::string id; // stable, for --json: "store", "links", "ssh-perms", ...
    CheckStatus status = CheckStatus::ok;
    std::string message; // one line
    std::string fix;     // the command that fixes it (empty when ok)
};

struct DoctorInput {
    const Config *config = nullptr;
    std::filesystem::path home;
    std::string store;    // --store or config `store`
    std::string path_env; // $PATH
    std::string python;   // python3 executable to ask for its version ("" to skip)
};

std::vector<Check> run_doctor(const DoctorInput &in);

// Included GB for a plan name; 0 for custom.
double plan_quota_gb(const std::string &plan);

// Python "major.minor" versions that have user site-packages with something installed.
std::vector<std::string> user_site_versions(const std::filesystem::path &home);

} // namespace berth
