// berth-paperspace-replica: a Paperspace API v1 server owned by the project, for tests and for
// trying berth without an account (../../shared/paperspace/SPEC.md §4.1 and §8). It serves,
// under /v1: auth/session, billing/account-standing, os-templates, machines (list, get,
// create, update, delete, start, stop, restart) with their states and events,
// machine-events, startup-scripts (create, list, get, update, delete, assign, unassign) and
// public-ips (claim, list, assign, release), with the API's pagination and error shapes.
//
// usage: berth-paperspace-replica --data DIR [--port N] [--api-key KEY] [--boot-seconds S]
//        [--machines DIR --berth PATH]   (real machines: VMs with a kept disk, the user
//        `paperspace`, sshd on the machine's public IP port 22, startup scripts run as root)
// Prints "listening on 127.0.0.1:PORT" once it accepts connections.
// Test control:
//   POST /_replica/faults  {"next": [429, 500, ...]}  the next answers fail so, unhandled
//                          {"after": [502, ...]}      the next requests are handled, then
//                                                     answered so (a lost answer)
//                          {"delay_ms": N}            every (matching) answer N ms late
//                          {"body": ["...", ...]}     the next answers are these bodies, 200
//                          {"match": "POST /v1/machines"}   faults hit only these requests
//                          {"capacity": N}            the next N creates/starts find no
//                                                     capacity: the event ends in error and
//                                                     the machine falls back to off
//                          {"standing": false}        the account is not in good standing
//                          {"bill_off": true}         compute bills while off (SPEC §8)
//   GET  /_replica/bill    {"total": dollars, "items": {machine id: dollars, ...}}
#include "account.hpp"

#include <CLI/CLI.hpp>
#include <deque>
#include <httplib.h>
#include <iostream>
#include <thread>

using nlohmann::json;

namespace {

struct Faults {
    std::mutex mu;
    std::deque<int> next, after;
    std::deque<std::string> bodies;
    std::string match;
    int delay_ms = 0;
};

const char *code_of(int status) {
    switch (status) {
    case 400:
        return "BAD_REQUEST";
    case 401:
        return "UNAUTHORIZED";
    case 403:
        return "FORBIDDEN";
    case 404:
        return "NOT_FOUND";
    case 405:
        return "METHOD_NOT_SUPPORTED";
    case 408:
        return "TIMEOUT";
    case 409:
        return "CONFLICT";
    case 412:
        return "PRECONDITION_FAILED";
    case 413:
        return "PAYLOAD_TOO_LARGE";
    case 429:
        return "TOO_MANY_REQUESTS";
    default:
        return "INTERNAL_SERVER_ERROR";
    }
}

void reply(httplib::Response &res, int status, const json &body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
}

void error(httplib::Response &res, int status, const std::string &message) {
    reply(res, status, {{"code", code_of(status)}, {"message", message}});
}

// The API's pagination: ?after=<cursor>&limit=N (1-120), answered {hasMore, items, nextPage}.
json page(const std::vector<json> &all, const httplib::Request &req) {
    long limit = 20;
    if (req.has_param("limit")) {
        limit = std::atol(req.get_param_value("limit").c_str());
        if (limit < 1 || limit > 120) throw ps::ApiError{400, "limit must be between 1 and 120"};
    }
    std::size_t from = 0;
    if (req.has_param("after")) {
        std::string cursor = req.get_param_value("after");
        bool found = false;
        for (std::size_t i = 0; i < all.size(); ++i)
            if (all[i].value("id", all[i].value("ip", std::string())) == cursor) {
                from = i + 1;
                found = true;
            }
        if (!found) throw ps::ApiError{400, "Invalid cursor"};
    }
    json items = json::array();
    for (std::size_t i = from; i < all.size() && items.size() < static_cast<std::size_t>(limit);
         ++i)
        items.push_back(all[i]);
    std::size_t end = from + items.size();
    json out{{"hasMore", end < all.size()}, {"items", items}};
    if (end < all.size() && !items.empty())
        out["nextPage"] = items.back().value("id", items.back().value("ip", std::string()));
    return out;
}

} // namespace

int main(int argc, char **argv) {
    CLI::App app{"berth-paperspace-replica: a local Paperspace API v1 for tests"};
    std::string data, host = "127.0.0.1", api_key = "replica-key";
    int port = 0;
    double boot = 4;
    app.add_option("--data", data, "the recorded data (shared/paperspace/data)")->required();
    app.add_option("--port", port, "0: any free port");
    app.add_option("--api-key", api_key, "the key clients must send");
    app.add_option("--boot-seconds", boot, "seconds a machine takes from provisioning to ready");
    std::string machines, berth_binary;
    app.add_option("--machines", machines,
                   "make machines real: VMs (local-provider machines) under this directory (root)");
    app.add_option("--berth", berth_binary, "the berth binary that boots machines")
        ->check(CLI::ExistingFile);
    CLI11_PARSE(app, argc, argv);
    std::unique_ptr<ps::Account> account;
    try {
        account = std::make_unique<ps::Account>(data, boot);
        if (!machines.empty()) account->use_machines(machines, berth_binary);
    } catch (const std::exception &e) {
        std::cerr << "berth-paperspace-replica: " << e.what() << std::endl;
        return 1;
    }
    auto &acc = *account;
    Faults faults;
    httplib::Server svr;

    using Fn = std::function<json(const httplib::Request &, double now)>;
    // Faults, auth, the account's lock, errors as the API shapes them.
    auto api = [&](Fn fn) {
        return [&, fn](const httplib::Request &req, httplib::Response &res) {
            int fault = 0, after = 0, delay = 0;
            std::optional<std::string> body;
            {
                std::lock_guard lk(faults.mu);
                std::string what = req.method + " " + req.path;
                bool hit = faults.match.empty() || what.rfind(faults.match, 0) == 0;
                if (hit && !faults.next.empty()) {
                    fault = faults.next.front();
                    faults.next.pop_front();
                } else if (hit && !faults.after.empty()) {
                    after = faults.after.front();
                    faults.after.pop_front();
                }
                if (hit && !faults.bodies.empty()) {
                    body = faults.bodies.front();
                    faults.bodies.pop_front();
                }
                if (hit) delay = faults.delay_ms;
            }
            if (delay) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
            if (fault)
                return error(res, fault, fault == 429 ? "Too many requests" : "Injected fault");
            std::string auth = req.get_header_value("Authorization");
            bool ok = auth == "Bearer " + api_key || req.get_header_value("x-api-key") == api_key;
            if (!ok) {
                // /auth/session answers null for a key it does not know (SPEC §8).
                if (req.path == "/v1/auth/session") return reply(res, 200, json());
                return error(res, 401, "You must be authenticated to access this resource.");
            }
            try {
                json out;
                {
                    std::lock_guard lk(acc.mu);
                    out = fn(req, ps::now_seconds());
                }
                reply(res, 200, out);
            } catch (const ps::ApiError &e) {
                error(res, e.status, e.message);
            } catch (const std::exception &e) {
                error(res, 400, std::string("Invalid request: ") + e.what());
            }
            if (after) error(res, after, "Bad gateway");
            if (body) {
                res.status = 200;
                res.set_content(*body, "application/json");
            }
        };
    };
    auto body_of = [](const httplib::Request &req) {
        auto j = json::parse(req.body.empty() ? "{}" : req.body, nullptr, false);
        if (j.is_discarded()) throw ps::ApiError{400, "Invalid JSON body"};
        return j;
    };
    auto id = [](const httplib::Request &req) { return req.matches[1].str(); };

    svr.Get("/v1/auth/session", api([&](const httplib::Request &req, double) {
                return acc.session(req.get_header_value("Authorization").substr(7));
            }));
    svr.Get("/v1/billing/account-standing",
            api([&](const httplib::Request &, double) { return acc.standing(); }));
    svr.Get("/v1/os-templates",
            api([&](const httplib::Request &req, double) { return page(acc.templates(), req); }));
    svr.Get("/v1/machines", api([&](const httplib::Request &req, double now) {
                std::map<std::string, std::string> f;
                for (const char *k : {"name", "region", "machineType"})
                    if (req.has_param(k)) f[k] = req.get_param_value(k);
                return page(acc.machines(now, f), req);
            }));
    svr.Post("/v1/machines", api([&](const httplib::Request &req, double now) {
                 return acc.create(now, body_of(req));
             }));
    svr.Get(R"(/v1/machines/([A-Za-z0-9]+))", api([&](const httplib::Request &req, double now) {
                return acc.machine(now, id(req));
            }));
    svr.Put(R"(/v1/machines/([A-Za-z0-9]+))", api([&](const httplib::Request &req, double now) {
                return acc.update(now, id(req), body_of(req));
            }));
    svr.Delete(R"(/v1/machines/([A-Za-z0-9]+))", api([&](const httplib::Request &req, double now) {
                   return acc.remove(now, id(req));
               }));
    svr.Patch(
        R"(/v1/machines/([A-Za-z0-9]+)/start)",
        api([&](const httplib::Request &req, double now) { return acc.start(now, id(req)); }));
    svr.Patch(R"(/v1/machines/([A-Za-z0-9]+)/stop)",
              api([&](const httplib::Request &req, double now) { return acc.stop(now, id(req)); }));
    svr.Patch(
        R"(/v1/machines/([A-Za-z0-9]+)/restart)",
        api([&](const httplib::Request &req, double now) { return acc.restart(now, id(req)); }));
    svr.Get(R"(/v1/machine-events/([A-Za-z0-9]+))",
            api([&](const httplib::Request &req, double now) { return acc.event(now, id(req)); }));
    svr.Get("/v1/machine-events", api([&](const httplib::Request &req, double now) {
                return page(acc.events(now, req.has_param("machineId")
                                                ? req.get_param_value("machineId")
                                                : ""),
                            req);
            }));
    svr.Get("/v1/startup-scripts",
            api([&](const httplib::Request &req, double) { return page(acc.scripts(), req); }));
    svr.Post("/v1/startup-scripts", api([&](const httplib::Request &req, double now) {
                 return acc.create_script(now, body_of(req));
             }));
    svr.Get(R"(/v1/startup-scripts/([A-Za-z0-9]+))",
            api([&](const httplib::Request &req, double) { return acc.script(id(req)); }));
    svr.Put(R"(/v1/startup-scripts/([A-Za-z0-9]+))", api([&](const httplib::Request &req, double) {
                return acc.update_script(id(req), body_of(req));
            }));
    svr.Delete(R"(/v1/startup-scripts/([A-Za-z0-9]+))",
               api([&](const httplib::Request &req, double now) {
                   return acc.delete_script(now, id(req));
               }));
    svr.Post(R"(/v1/startup-scripts/([A-Za-z0-9]+)/assign)",
             api([&](const httplib::Request &req, double) {
                 return acc.assign_script(id(req), body_of(req), true);
             }));
    svr.Post(R"(/v1/startup-scripts/([A-Za-z0-9]+)/unassign)",
             api([&](const httplib::Request &req, double) {
                 return acc.assign_script(id(req), body_of(req), false);
             }));
    svr.Get("/v1/public-ips",
            api([&](const httplib::Request &req, double now) { return page(acc.ips(now), req); }));
    svr.Post("/v1/public-ips", api([&](const httplib::Request &req, double now) {
                 return acc.claim_ip(now, body_of(req));
             }));
    svr.Put(R"(/v1/public-ips/([0-9.]+))", api([&](const httplib::Request &req, double now) {
                return acc.assign_ip(now, id(req), body_of(req));
            }));
    svr.Delete(R"(/v1/public-ips/([0-9.]+))", api([&](const httplib::Request &req, double now) {
                   return acc.release_ip(now, id(req));
               }));

    svr.Post("/_replica/faults", [&](const httplib::Request &req, httplib::Response &res) {
        auto j = json::parse(req.body, nullptr, false);
        if (!j.is_object()) return error(res, 400, "faults: a JSON object");
        {
            std::lock_guard lk(faults.mu);
            faults.next.clear();
            faults.after.clear();
            faults.bodies.clear();
            for (const auto &f : j.value("next", json::array()))
                faults.next.push_back(f.get<int>());
            for (const auto &f : j.value("after", json::array()))
                faults.after.push_back(f.get<int>());
            for (const auto &b : j.value("body", json::array()))
                faults.bodies.push_back(b.is_string() ? b.get<std::string>() : b.dump());
            faults.match = j.value("match", std::string());
            faults.delay_ms = j.value("delay_ms", 0);
        }
        std::lock_guard lk(acc.mu);
        if (j.contains("capacity")) acc.push_capacity_failure(j["capacity"].get<int>());
        if (j.contains("standing")) acc.set_standing(j["standing"].get<bool>());
        if (j.contains("bill_off")) acc.set_off_rate(j["bill_off"].get<bool>());
        reply(res, 200, {{"ok", true}});
    });
    svr.Get("/_replica/bill", [&](const httplib::Request &, httplib::Response &res) {
        std::lock_guard lk(acc.mu);
        reply(res, 200, acc.bill(ps::now_seconds()));
    });
    svr.set_error_handler([](const httplib::Request &, httplib::Response &res) {
        if (res.body.empty()) error(res, res.status, "No such endpoint");
    });
    if (port == 0)
        port = svr.bind_to_any_port(host);
    else if (!svr.bind_to_port(host, port))
        port = -1;
    if (port < 0) {
        std::cerr << "berth-paperspace-replica: cannot listen on " << host << std::endl;
        return 1;
    }
    std::cout << "listening on " << host << ":" << port << std::endl;
    svr.listen_after_bind();
    return 0;
}
