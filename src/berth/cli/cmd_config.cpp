// berth config show|get|set|path, version, help
#include "cli/commands.hpp"
#include "util/elf.hpp"

#include <cstdio>

#ifndef BERTH_VERSION
#define BERTH_VERSION "0.0.0"
#endif

namespace berth::cli {

void add_config(CLI::App &app, Context &ctx) {
    auto *c = command(app, "config");
    c->require_subcommand(1);
    subcommand(*c, "config", "show")->callback([&ctx] {
        if (ctx.json) {
            nlohmann::json j = nlohmann::json::object();
            for (const auto &[k, v] : ctx.config.all())
                j[k] = {{"value", v.value}, {"origin", v.origin}};
            print_json({{"schema", "berth.config.show/1"},
                        {"file", ctx.config.file().string()},
                        {"values", j}});
            return;
        }
        for (const auto &[k, v] : ctx.config.all())
            std::printf("(%s) %s = %s\n", v.origin.c_str(), k.c_str(), v.value.c_str());
    });
    auto *get = subcommand(*c, "config", "get");
    static std::string key, value;
    get->add_option("KEY", key)->required();
    get->callback([&ctx] {
        must(find_config_key(key));
        const auto &v = ctx.config.get(key);
        if (ctx.json)
            print_json({{"schema", "berth.config.get/1"},
                        {"key", key},
                        {"value", v.value},
                        {"origin", v.origin}});
        else
            say(v.value);
    });
    auto *set = subcommand(*c, "config", "set");
    set->add_option("KEY", key)->required();
    set->add_option("VALUE", value)->required();
    set->callback([&ctx] {
        must(Config::write_key(ctx.config.file(), key, value));
        if (ctx.json)
            print_json({{"schema", "berth.config.set/1"},
                        {"key", key},
                        {"value", value},
                        {"file", ctx.config.file().string()}});
        else
            say(key + " = " + value + "  (" + ctx.config.file().string() + ")");
    });
    subcommand(*c, "config", "path")->callback([&ctx] {
        if (ctx.json)
            print_json({{"schema", "berth.config.path/1"}, {"file", ctx.config.file().string()}});
        else
            say(ctx.config.file().string());
    });
}

void add_version(CLI::App &app, Context &ctx) {
    command(app, "version")->callback([&ctx] {
        auto st = elf::is_static("/proc/self/exe");
        bool is_static = st && *st;
        if (ctx.json)
            print_json(
                {{"schema", "berth.version/1"}, {"version", BERTH_VERSION}, {"static", is_static}});
        else
            say(std::string("berth ") + BERTH_VERSION + (is_static ? " (static)" : ""));
    });
}

void add_help(CLI::App &app, Context &) {
    auto *h = command(app, "help");
    static std::vector<std::string> topic;
    h->add_option("COMMAND", topic);
    h->callback([] { print_help(); });
}

} // namespace berth::cli
