#include "cli/context.hpp"

#include "core/paths.hpp"
#include "util/fs.hpp"
#include "util/term.hpp"

#include <cstdio>
#include <iostream>

namespace berth::cli {

std::filesystem::path Context::home() const {
    return home_flag.empty() ? paths::home() : fs::absolute_normal(home_flag);
}

std::string Context::store_setting() const {
    return store_flag.empty() ? config.str("store") : store_flag;
}

void print_json(const nlohmann::json &j) {
    // Bytes from outside (file names, API strings) may not be UTF-8: replaced, never a throw.
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

void say(const std::string &line) {
    std::cout << line << '\n';
}

void warn(const std::string &line) {
    std::cerr << term::paint("berth: warning: ", term::Color::yellow, 2) << line << std::endl;
}

} // namespace berth::cli
