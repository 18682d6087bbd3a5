#include "core/paths.hpp"

#include <cstdlib>

namespace berth::paths {

static std::filesystem::path env_or(const char *var, const std::filesystem::path &fallback) {
    const char *v = std::getenv(var);
    // XDG: a relative value is invalid and must be ignored.
    if (v && *v == '/') return v;
    return fallback;
}

std::filesystem::path home() {
    const char *h = std::getenv("HOME");
    return h && *h ? std::filesystem::path(h) : std::filesystem::path("/");
}

std::filesystem::path config_home() {
    return env_or("XDG_CONFIG_HOME", home() / ".config");
}
std::filesystem::path data_home() {
    return env_or("XDG_DATA_HOME", home() / ".local/share");
}
std::filesystem::path state_home() {
    return env_or("XDG_STATE_HOME", home() / ".local/state");
}

std::filesystem::path agent_dir() {
    const char *d = std::getenv("BERTH_AGENT_DIR");
    if (d && *d == '/') return std::filesystem::path(d).lexically_normal();
    const char *h = std::getenv("HOME");
    return std::filesystem::path(h && *h ? h : "/root") / ".berth";
}

std::filesystem::path config_file() {
    return env_or("BERTH_CONFIG", config_home() / "berth" / "config.toml");
}

} // namespace berth::paths
