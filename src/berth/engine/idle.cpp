#include "engine/idle.hpp"

#include "agent/idle.hpp"
#include "engine/workspace.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <cmath>
#include <future>

namespace berth {

namespace {

Result<std::string> ask(const InstanceRecord &r, const std::vector<std::string> &args,
                        std::chrono::seconds timeout) {
    if (r.status != Status::running)
        return fail("instance '" + r.name + "' is " + status_name(r.status),
                    "start it with `berth start " + r.name + "`");
    auto argv = remote_berth(r, args);
    // A machine that does not answer fails fast, and a missing host key never prompts.
    argv.insert(argv.begin() + 1, {"-o", "ConnectTimeout=10"});
    auto out = proc::run(argv, {.input = {}, .env = {}, .timeout = timeout});
    if (!out) return tl::unexpected(out.error());
    if (out->status != 0) {
        auto lines = str::split(str::trim(out->err), '\n');
        std::string why = lines.empty() ? "exit " + std::to_string(out->status) : lines.back();
        if (str::contains(why, "berth: command not found") || out->status == 127)
            return fail("'" + r.name + "' has no berth agent (an old machine?)",
                        "`berth start " + r.name + "` bootstraps it again");
        return fail("'" + r.name + "' answered: " + why);
    }
    return out->out;
}

} // namespace

Result<nlohmann::json> idle_status(const InstanceRecord &r, std::chrono::seconds timeout) {
    auto out = ask(r, {"agent", "idle", "status"}, timeout);
    if (!out) return tl::unexpected(out.error());
    auto j = nlohmann::json::parse(*out, nullptr, false);
    if (!j.is_object() || j.value("schema", std::string()) != "berth.idle/1")
        return fail(ErrorKind::malformed, "'" + r.name + "' answered an unexpected idle status");
    return j;
}

std::vector<std::optional<nlohmann::json>> idle_status_all(const std::vector<InstanceRecord> &rs) {
    std::vector<std::future<std::optional<nlohmann::json>>> f;
    for (const auto &r : rs)
        f.push_back(std::async(std::launch::async, [r]() -> std::optional<nlohmann::json> {
            if (r.status != Status::running) return std::nullopt;
            auto s = idle_status(r, std::chrono::seconds(8));
            if (!s) return std::nullopt;
            return *s;
        }));
    std::vector<std::optional<nlohmann::json>> out;
    for (auto &x : f)
        out.push_back(x.get());
    return out;
}

nlohmann::json idle_spec(const InstanceRecord &r) {
    auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
    if (spec.is_object() && spec.contains("idle") && spec["idle"].is_object()) return spec["idle"];
    return nlohmann::json::object();
}

Result<> set_idle(StateDb &db, InstanceRecord r, long seconds) {
    auto out = ask(r, {"agent", "idle", "set", "--seconds", std::to_string(seconds)},
                   std::chrono::seconds(30));
    if (!out) return tl::unexpected(out.error());
    auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
    if (!spec.is_object()) spec = nlohmann::json::object();
    if (!spec.contains("idle") || !spec["idle"].is_object())
        spec["idle"] = nlohmann::json::object();
    spec["idle"]["seconds"] = seconds;
    spec["idle"]["changed"] = true; // applied again after a start (see Engine::start)
    r.spec_json = spec.dump();
    return db.put(r);
}

Result<> hold_machine(const InstanceRecord &r, long seconds, bool release) {
    std::vector<std::string> args = {"hold"};
    if (release)
        args.push_back("--release");
    else if (seconds > 0)
        args.insert(args.end(), {"--for", std::to_string(seconds) + "s"});
    auto out = ask(r, args, std::chrono::seconds(30));
    if (!out) return tl::unexpected(out.error());
    return {};
}

std::string stops_in(const nlohmann::json &s) {
    double now = s.value("now", s.value("updated", 0.0));
    double at = s.value("stops_at", 0.0);
    std::string kind = s.value("stop_kind", std::string());
    bool held = s.contains("hold") && s["hold"].is_object() && s["hold"].value("active", false);
    if (!s.value("stopping", std::string()).empty()) return "stopping";
    if (at <= 0) return held ? "held" : "idle off";
    long left = std::lround(std::max(0.0, at - now));
    std::string out = idle::format_duration(std::max(1L, left));
    if (held && kind == "idle") return "held";
    return out + (kind == "idle" ? " idle" : " max");
}

} // namespace berth
