// berth perms explain MODE
#include "cli/commands.hpp"
#include "util/perms.hpp"

#include <cstdio>

namespace berth::cli {

void add_perms(CLI::App &app, Context &ctx) {
    auto *p = command(app, "perms");
    p->require_subcommand(1);
    auto *e = subcommand(*p, "perms", "explain");
    static std::vector<std::string> modes;
    e->add_option("MODE", modes, "octal (744, 0600, 4755) or symbolic (rwxr--r--)")->required();
    e->callback([&ctx] {
        nlohmann::json arr = nlohmann::json::array();
        for (const auto &m : modes) {
            mode_t mode = must(perms::parse(m));
            char oct[8];
            std::snprintf(oct, sizeof oct, "%o", mode);
            if (ctx.json) {
                arr.push_back({{"input", m},
                               {"octal", oct},
                               {"symbolic", perms::symbolic(mode)},
                               {"lines", perms::explain(mode)}});
                continue;
            }
            say(std::string(oct) + " = " + perms::symbolic(mode) +
                "   (read=4, write=2, execute=1; add them)");
            for (const auto &l : perms::explain(mode))
                say("  " + l);
        }
        if (ctx.json) print_json({{"schema", "berth.perms.explain/1"}, {"modes", arr}});
    });
}

} // namespace berth::cli
