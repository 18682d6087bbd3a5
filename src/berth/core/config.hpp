// The one table of configuration keys. Each value is resolved from, in order of precedence:
// command line > environment (BERTH_<KEY>, dots as underscores) > config file > default,
// and remembers where it came from, so `berth config show` can say (like `ccache -p`).
#pragma once

#include "util/result.hpp"

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace berth {

enum class ConfigType { string, number, path };

struct ConfigKey {
    std::string name; // "store", "keys.test_host"
    ConfigType type;
    std::string default_value;
    std::string summary;
};

// Every key berth knows. Adding a key here is all it takes to make it configurable.
const std::vector<ConfigKey> &config_keys();
// More keys (each provider's `provider.NAME.KEY`), registered before Config::load.
void add_config_keys(const std::vector<ConfigKey> &keys);

// The environment variable for a key: "keys.test_host" -> "BERTH_KEYS_TEST_HOST".
std::string config_env_name(const std::string &key);

struct ConfigValue {
    std::string value;
    std::string
        origin; // "default", "env BERTH_STORE", "file ~/.config/berth/config.toml", "command line"
};

class Config {
public:
    // Loads defaults, the file (if present) and the environment. Fails on a malformed file,
    // an unknown key, or a value of the wrong type, naming the file and the key.
    static Result<Config> load(const std::filesystem::path &file);

    // A command-line override (highest precedence). Fails on an unknown key.
    Result<> set_override(const std::string &key, const std::string &value);

    const ConfigValue &get(const std::string &key) const;
    std::string str(const std::string &key) const { return get(key).value; }
    double number(const std::string &key) const;
    const std::map<std::string, ConfigValue> &all() const { return m_values; }
    const std::filesystem::path &file() const { return m_file; }

    // Writes key = value into the config file, keeping its other keys. Fails on unknown keys
    // or bad values; the file is replaced atomically.
    static Result<> write_key(const std::filesystem::path &file, const std::string &key,
                              const std::string &value);

private:
    std::filesystem::path m_file;
    std::map<std::string, ConfigValue> m_values;
};

// Finds a key by name; fails with "did you mean" when it is unknown.
Result<const ConfigKey *> find_config_key(const std::string &name);

} // namespace berth
