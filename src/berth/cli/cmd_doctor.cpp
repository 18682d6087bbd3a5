// berth doctor
#include "agent/doctor.hpp"
#include "cli/commands.hpp"
#include "core/exit_codes.hpp"
#include "util/process.hpp"
#include "util/term.hpp"

#include <cstdio>
#include <cstdlib>

namespace berth::cli {

void add_doctor(CLI::App &app, Context &ctx) {
    command(app, "doctor")->callback([&ctx] {
        DoctorInput in;
        in.config = &ctx.config;
        in.home = ctx.home();
        in.store = ctx.store_setting();
        const char *path = std::getenv("PATH");
        in.path_env = path ? path : "";
        in.python = proc::which("python3").value_or("");
        auto checks = run_doctor(in);
        int problems = 0;
        for (const auto &c : checks)
            problems += c.status == CheckStatus::fail || c.status == CheckStatus::warn;
        bool failed = false;
        for (const auto &c : checks)
            failed |= c.status == CheckStatus::fail;
        if (ctx.json) {
            nlohmann::json arr = nlohmann::json::array();
            for (const auto &c : checks)
                arr.push_back({{"id", c.id},
                               {"status", check_status_name(c.status)},
                               {"message", c.message},
                               {"fix", c.fix}});
            print_json({{"schema", "berth.doctor/1"}, {"checks", arr}, {"problems", problems}});
        } else {
            for (const auto &c : checks) {
                const char *mark = c.status == CheckStatus::ok     ? "ok  "
                                   : c.status == CheckStatus::info ? "info"
                                   : c.status == CheckStatus::warn ? "warn"
                                                                   : "FAIL";
                auto color = c.status == CheckStatus::ok     ? term::Color::green
                             : c.status == CheckStatus::info ? term::Color::dim
                             : c.status == CheckStatus::warn ? term::Color::yellow
                                                             : term::Color::red;
                std::printf("%s %-12s %s\n", term::paint(mark, color).c_str(), c.id.c_str(),
                            c.message.c_str());
                if (!c.fix.empty()) std::printf("     %-12s fix: %s\n", "", c.fix.c_str());
            }
            std::printf("%d problem(s)\n", problems);
        }
        if (failed) ctx.exit_code = exit_code::problems;
    });
}

} // namespace berth::cli
