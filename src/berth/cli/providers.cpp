#include "cli/providers.hpp"

#include "core/config.hpp"
#include "util/http_retry.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <set>

namespace berth::cli {

const ProviderRegistry &registry(const Context &ctx) {
    double s = ctx.config.number("http.deadline_s");
    if (s > 0) set_default_http_deadline(std::chrono::milliseconds(static_cast<long>(s * 1000)));
    set_retry_note([](const std::string &m) { warn(m); }); // stderr, also under --json
    return builtin_registry();
}

void add_provider_flags(CLI::App *cmd, FlagValues &given, bool everywhere_only) {
    std::set<std::string> done;
    auto rows = builtin_provider_rows();
    for (const auto &row : rows)
        for (const auto &o : row.options) {
            if (o.internal || (everywhere_only && !o.everywhere)) continue;
            if (!done.insert(o.name).second) continue;
            std::vector<std::string> who;
            for (const auto &r : rows)
                for (const auto &x : r.options)
                    if (x.name == o.name) who.push_back(r.name);
            std::string help = str::join(who, ", ") + ": " + o.help;
            if (!o.default_value.empty()) help += " (default " + o.default_value + ")";
            std::string name = o.name;
            if (o.flag)
                cmd->add_flag_callback(
                    "--" + name, [&given, name] { given[name] = "true"; }, help);
            else
                cmd->add_option_function<std::string>(
                       "--" + name, [&given, name](const std::string &v) { given[name] = v; }, help)
                    ->type_name("VALUE");
        }
}

Options provider_options(const Context &ctx, const ProviderRow &row, const FlagValues &given,
                         bool lenient) {
    Options out;
    for (const auto &o : row.options) {
        if (!o.config || o.internal) continue;
        std::string key = "provider." + row.name + "." + o.name;
        const auto &all = ctx.config.all();
        auto it = all.find(key);
        if (it != all.end() && !it->second.value.empty() && it->second.origin != "default")
            out[o.name] = it->second.value;
    }
    for (const auto &[k, v] : given) {
        bool takes = std::any_of(row.options.begin(), row.options.end(),
                                 [&](const OptionSpec &o) { return o.name == k && !o.internal; });
        if (takes)
            out[k] = v;
        else if (!lenient) {
            std::vector<std::string> who;
            for (const auto &r : builtin_provider_rows())
                for (const auto &x : r.options)
                    if (x.name == k) who.push_back(r.name);
            throw Abort(Error{"--" + k + " is not an option of provider " + row.name,
                              who.empty() ? "see `berth up --help`"
                                          : "it is for " + str::join(who, ", ") +
                                                ": add --provider " + who.front(),
                              2, ErrorKind::user});
        }
    }
    return out;
}

void register_provider_config() {
    std::vector<ConfigKey> keys;
    for (const auto &row : builtin_provider_rows())
        for (const auto &o : row.options)
            if (o.config && !o.internal)
                keys.push_back({"provider." + row.name + "." + o.name, ConfigType::string,
                                o.default_value, row.name + ": " + o.help});
    add_config_keys(keys);
}

} // namespace berth::cli
