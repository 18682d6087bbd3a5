// Repositories in unit tests keep their key file beside them, never in the user's config.
#pragma once

#include "store/repository.hpp"

#include <filesystem>

inline berth::store::KeyOptions test_keys(const std::filesystem::path &dir) {
    berth::store::KeyOptions k;
    k.key_file = dir / "repo-key.json";
    return k;
}
