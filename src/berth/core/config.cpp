#include "core/config.hpp"

#include "util/fs.hpp"
#include "util/strings.hpp"

#include <cstdlib>
#include <sstream>
#include <toml++/toml.h>

namespace berth {

namespace {

std::vector<ConfigKey> &key_table() {
    static std::vector<ConfigKey> keys = {
        {"store", ConfigType::path, "", "persistent store root (empty: auto-detect /storage)"},
        {"notebooks_dir", ConfigType::path, "/notebooks",
         "per-machine persistent workspace, counted in the storage quota"},
        {"plan", ConfigType::string, "pro",
         "storage plan for quota checks: free (5 GB), pro (15 GB), growth (50 GB) or custom"},
        {"quota_gb", ConfigType::number, "", "included storage in GB (empty: from plan)"},
        {"storage_overage_per_gb_month", ConfigType::number, "0.29",
         "dollars per GB-month over the quota"},
        {"keys.test_host", ConfigType::string, "github.com",
         "host `berth keys test` checks by default"},
        {"restore.timeout_s", ConfigType::number, "60",
         "the boot hook gives up after this many seconds so the machine still boots"},
        {"provider", ConfigType::string, "local", "where `berth up` creates machines by default"},
        {"idle", ConfigType::string, "",
         "stop a machine after this long without activity (45m, 2h, off; empty: 60m where "
         "billed, off on local)"},
        {"idle.cpu_percent", ConfigType::number, "10",
         "CPU use (percent of one core) above which a machine is busy"},
        {"idle.network_kbps", ConfigType::number, "50",
         "network traffic (kB/s, loopback excluded) above which a machine is busy"},
        {"idle.gpu_percent", ConfigType::number, "5",
         "GPU utilisation (percent) above which a machine is busy"},
        {"repo", ConfigType::string, "",
         "where snapshots go: a directory or ssh://[user@]host[:port]/path (empty: "
         "$XDG_DATA_HOME/berth/repo)"},
        {"http.deadline_s", ConfigType::number, "60",
         "seconds one provider request may take in all, retries and waits included"},
    };
    return keys;
}

} // namespace

const std::vector<ConfigKey> &config_keys() {
    return key_table();
}

void add_config_keys(const std::vector<ConfigKey> &keys) {
    auto &t = key_table();
    for (const auto &k : keys) {
        bool known = false;
        for (const auto &x : t)
            known = known || x.name == k.name;
        if (!known) t.push_back(k);
    }
}

std::string config_env_name(const std::string &key) {
    std::string out = "BERTH_";
    for (char c : key)
        out += c == '.' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return out;
}

Result<const ConfigKey *> find_config_key(const std::string &name) {
    std::vector<std::string> names;
    for (const auto &k : config_keys()) {
        if (k.name == name) return &k;
        names.push_back(k.name);
    }
    auto near = str::closest(name, names);
    return fail("unknown config key '" + name + "'",
                near ? "did you mean '" + *near + "'?" : "see `berth config show`", 2);
}

static Result<> check_value(const ConfigKey &k, const std::string &v, const std::string &where) {
    if (k.type == ConfigType::number && !v.empty()) {
        char *end = nullptr;
        std::strtod(v.c_str(), &end);
        if (end == v.c_str() || *end != '\0')
            return fail(where + ": " + k.name + " must be a number, got '" + v + "'", "", 2);
    }
    if (k.name == "plan" && v != "free" && v != "pro" && v != "growth" && v != "custom")
        return fail(where + ": plan must be free, pro, growth or custom, got '" + v + "'", "", 2);
    return {};
}

static void flatten(const toml::table &t, const std::string &prefix,
                    std::vector<std::pair<std::string, const toml::node *>> &out) {
    for (const auto &[k, v] : t) {
        std::string name =
            prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str());
        if (const auto *sub = v.as_table())
            flatten(*sub, name, out);
        else
            out.emplace_back(name, &v);
    }
}

static std::string node_text(const toml::node &n) {
    if (auto s = n.value<std::string>()) return *s;
    if (auto i = n.value<std::int64_t>()) return std::to_string(*i);
    if (auto d = n.value<double>()) {
        std::ostringstream os;
        os << *d;
        return os.str();
    }
    if (auto b = n.value<bool>()) return *b ? "true" : "false";
    return {};
}

Result<Config> Config::load(const std::filesystem::path &file) {
    Config c;
    c.m_file = file;
    for (const auto &k : config_keys())
        c.m_values[k.name] = {k.default_value, "default"};

    if (std::filesystem::exists(file)) {
        toml::table tbl;
        try {
            tbl = toml::parse_file(file.string());
        } catch (const toml::parse_error &e) {
            return fail("config file " + file.string() + " line " +
                            std::to_string(e.source().begin.line) + ": " +
                            std::string(e.description()),
                        "fix or remove the file", 2);
        }
        std::vector<std::pair<std::string, const toml::node *>> entries;
        flatten(tbl, "", entries);
        for (const auto &[name, node] : entries) {
            auto key = find_config_key(name);
            if (!key) {
                auto e = key.error();
                e.what = "config file " + file.string() + ": " + e.what;
                return tl::unexpected(e);
            }
            std::string v = node_text(*node);
            BERTH_TRY(check_value(**key, v, "config file " + file.string()));
            c.m_values[name] = {v, "file " + file.string()};
        }
    }
    for (const auto &k : config_keys()) {
        std::string env = config_env_name(k.name);
        if (const char *v = std::getenv(env.c_str())) {
            BERTH_TRY(check_value(k, v, "environment " + env));
            c.m_values[k.name] = {v, "env " + env};
        }
    }
    return c;
}

Result<> Config::set_override(const std::string &key, const std::string &value) {
    auto k = find_config_key(key);
    if (!k) return tl::unexpected(k.error());
    BERTH_TRY(check_value(**k, value, "command line"));
    m_values[key] = {value, "command line"};
    return {};
}

const ConfigValue &Config::get(const std::string &key) const {
    static const ConfigValue none{"", "unknown key"};
    auto it = m_values.find(key);
    return it == m_values.end() ? none : it->second;
}

double Config::number(const std::string &key) const {
    const auto &v = get(key).value;
    return v.empty() ? 0.0 : std::strtod(v.c_str(), nullptr);
}

Result<> Config::write_key(const std::filesystem::path &file, const std::string &key,
                           const std::string &value) {
    auto k = find_config_key(key);
    if (!k) return tl::unexpected(k.error());
    BERTH_TRY(check_value(**k, value, "value"));
    toml::table tbl;
    if (std::filesystem::exists(file)) {
        try {
            tbl = toml::parse_file(file.string());
        } catch (const toml::parse_error &e) {
            return fail("config file " + file.string() + ": " + std::string(e.description()),
                        "fix or remove the file", 2);
        }
    }
    toml::table *t = &tbl;
    auto parts = str::split(key, '.');
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        auto *sub = (*t)[parts[i]].as_table();
        if (!sub) {
            t->insert_or_assign(parts[i], toml::table{});
            sub = (*t)[parts[i]].as_table();
        }
        t = sub;
    }
    if ((*k)->type == ConfigType::number && !value.empty())
        t->insert_or_assign(parts.back(), std::strtod(value.c_str(), nullptr));
    else
        t->insert_or_assign(parts.back(), value);
    std::ostringstream os;
    os << tbl << "\n";
    BERTH_TRY(fs::make_dirs(file.parent_path()));
    return fs::write_file_atomic(file, os.str(), 0644);
}

} // namespace berth
