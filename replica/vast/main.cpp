// berth-vast-replica: a Vast.ai API server owned by the project, for tests and for trying berth
// without an account (../../shared/vastai/SPEC.md §10). It serves the real recorded offers.
// It serves search (POST /api/v0/bundles/, GET /bundles?q=, PUT /search/asks/), gpu names,
// auth as the API does it, the account (instances, keys, user, invoices; see instances.hpp),
// and fault injection.
//
// usage: berth-vast-replica --offers FILE [--gpu-names FILE] [--port N] [--api-key KEY]
//        [--machines DIR --berth PATH]   (real instances: local-provider machines under DIR)
// Prints "listening on 127.0.0.1:PORT" once it accepts connections.
// Test control: POST /_replica/faults with any of
//   "next": [429, 503, ...]   the next responses fail with these statuses, unhandled
//   "after": [502, ...]       the next requests ARE handled, then answered with these statuses
//   "delay_ms": N             every answer is N ms late (0 to stop)
//   "late_ms": N              matched requests are handled, then answered N ms late
//   "trickle_ms": N           matched answers are sent one byte every N ms
//   "body": ["...", ...]      the next matched requests are handled, then answered 200 with
//                             these bodies instead (hostile answers: wrong types, not JSON)
//   "match": "DELETE /api/v0/instances/"   faults hit only requests starting so
//   "fate": ["exited", ...]   the next created instances end so instead of running
//                             ("offline" too; "on-demand": its bid is silently dropped)
//   "list": ["empty", ...]    the next instance lists come back empty, or "malformed"
//   "outbid": true|false      interruptible instances lose (stop) or regain (resume) the GPU
//   "credit_left": D          the account has D dollars left from now (at 0 Vast stops
//                             running instances)
#include "instances.hpp"
#include "search.hpp"

#include <CLI/CLI.hpp>
#include <deque>
#include <fstream>
#include <httplib.h>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

using nlohmann::json;

namespace {

struct State {
    std::vector<json> offers;
    json gpu_names = json::array();
    std::string api_key;
    std::mutex mu;
    std::deque<int> faults, after;
    std::string match; // faults apply to requests whose "METHOD /path" starts with this
    int delay_ms = 0;
    int late_ms = 0;                // matched requests: handled, then answered this late
    int trickle_ms = 0;             // matched requests: the answer sent a byte every N ms
    std::deque<std::string> bodies; // matched requests: handled, answered with these bodies
    std::function<long long(const std::string &)> instance_key;
};

void reply(httplib::Response &res, int status, const json &body) {
    res.status = status;
    // Exactly "application/json": both CLIs compare the header by string (SPEC §1).
    res.set_content(body.dump(), "application/json");
}

void error(httplib::Response &res, int status, const std::string &code, const std::string &msg) {
    reply(res, status, {{"success", false}, {"error", code}, {"msg", msg}});
}

bool authorized(State &st, const httplib::Request &req) {
    std::string key;
    auto auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) == 0) key = auth.substr(7);
    if (key.empty() && req.has_param("api_key")) key = req.get_param_value("api_key");
    if (key.empty()) return false;
    if (key == st.api_key) return true;
    // An instance's own key reaches /api/v0/instances/<its id>/ and nothing else.
    long long id = st.instance_key ? st.instance_key(key) : 0;
    return id > 0 && req.path.rfind("/api/v0/instances/" + std::to_string(id) + "/", 0) == 0;
}

// Runs the shared preamble (faults, auth) and then the handler.
httplib::Server::Handler
guarded(State &st, bool needs_auth,
        std::function<void(const httplib::Request &, httplib::Response &)> fn) {
    return [&st, needs_auth, fn](const httplib::Request &req, httplib::Response &res) {
        int fault = 0, delay = 0, after = 0, late = 0, trickle = 0;
        std::optional<std::string> body;
        {
            std::lock_guard lk(st.mu);
            std::string what = req.method + " " + req.path;
            bool hit = st.match.empty() || what.rfind(st.match, 0) == 0 ||
                       req.path.rfind(st.match, 0) == 0;
            if (hit && !st.faults.empty()) {
                fault = st.faults.front();
                st.faults.pop_front();
            } else if (hit && !st.after.empty()) {
                after = st.after.front();
                st.after.pop_front();
            }
            delay = st.delay_ms;
            if (hit) {
                late = st.late_ms;
                trickle = st.trickle_ms;
                if (!st.bodies.empty()) {
                    body = st.bodies.front();
                    st.bodies.pop_front();
                }
            }
        }
        if (delay) std::this_thread::sleep_for(std::chrono::milliseconds(delay));
        if (fault == 429)
            return reply(res, 429,
                         {{"detail", "API requests too frequent endpoint threshold=2.0"}});
        if (fault)
            return error(res, fault, "server_error", "injected fault " + std::to_string(fault));
        if (needs_auth && !authorized(st, req))
            return error(res, 401, "auth_error", "Invalid user key");
        try {
            fn(req, res);
        } catch (const std::exception &e) {
            error(res, 400, "invalid_args", e.what());
        }
        // Handled, but the answer is lost on the way (a gateway error after the work).
        if (after) error(res, after, "server_error", "injected fault " + std::to_string(after));
        // Handled, and answered with a body of the wrong shape (hostile-answer tests).
        if (body) {
            res.status = 200;
            res.set_content(*body, "application/json");
        }
        if (late) std::this_thread::sleep_for(std::chrono::milliseconds(late));
        if (trickle) {
            auto text = std::make_shared<std::string>(res.body);
            res.body.clear();
            res.set_content_provider(text->size(), "application/json",
                                     [text, trickle](size_t off, size_t, httplib::DataSink &sink) {
                                         std::this_thread::sleep_for(
                                             std::chrono::milliseconds(trickle));
                                         return sink.write(text->data() + off, 1);
                                     });
        }
    };
}

json load(const std::string &path) {
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot read " + path);
    return json::parse(f);
}

} // namespace

int main(int argc, char **argv) {
    CLI::App app{"berth-vast-replica: a local Vast.ai API for tests"};
    std::string offers_file, names_file, host = "127.0.0.1";
    int port = 0;
    State st;
    st.api_key = "replica-key";
    app.add_option("--offers", offers_file, "recorded offers (offers_snapshot_*.json)")->required();
    app.add_option("--gpu-names", names_file, "recorded gpu_names_unique_*.json");
    app.add_option("--port", port, "0: any free port");
    app.add_option("--api-key", st.api_key, "the key clients must send");
    int replicate = 1;
    double credit = 25.0, boot_seconds = 2.0;
    app.add_option("--credit", credit, "the account's prepaid credit in dollars");
    app.add_option("--boot-seconds", boot_seconds, "how long a new instance stays loading");
    app.add_option("--replicate", replicate,
                   "serve each recorded offer N times (new ids), for benchmarks");
    std::string machines, berth_binary;
    app.add_option("--machines", machines,
                   "make instances real: local-provider machines under this directory (root)");
    app.add_option("--berth", berth_binary, "the berth binary that boots machines")
        ->check(CLI::ExistingFile);
    CLI11_PARSE(app, argc, argv);
    try {
        auto snap = load(offers_file);
        // The recording is a bare list of offers (or {"offers": [...]} as the API wraps it).
        for (auto &o : snap.is_array() ? snap : snap.at("offers"))
            st.offers.push_back(o);
        if (!names_file.empty()) st.gpu_names = load(names_file).at("gpu_names");
        std::size_t recorded = st.offers.size();
        for (int copy = 1; copy < replicate; ++copy)
            for (std::size_t i = 0; i < recorded; ++i) {
                json o = st.offers[i];
                long long id = o.value("id", 0LL) + 100000000LL * copy;
                o["id"] = id;
                o["ask_contract_id"] = id;
                st.offers.push_back(std::move(o));
            }
    } catch (const std::exception &e) {
        std::cerr << "berth-vast-replica: " << e.what() << std::endl;
        return 1;
    }

    httplib::Server svr;
    auto do_search = [&st](const json &q, httplib::Response &res) {
        reply(res, 200, {{"success", true}, {"offers", replica::search(st.offers, q)}});
    };
    svr.Post(R"(/api/v0/bundles/?)",
             guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                 do_search(req.body.empty() ? json::object() : json::parse(req.body), res);
             }));
    svr.Get(R"(/api/v0/bundles/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                do_search(req.has_param("q") ? json::parse(req.get_param_value("q"))
                                             : json::object(),
                          res);
            }));
    svr.Put(R"(/api/v0/search/asks/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                auto body = json::parse(req.body);
                do_search(body.value("q", json::object()), res);
            }));
    svr.Get(R"(/api/v0/gpu_names/unique/?)",
            guarded(st, false, [&](const httplib::Request &, httplib::Response &res) {
                reply(res, 200, {{"success", true}, {"gpu_names", st.gpu_names}});
            }));
    // The account: instances, SSH keys, the user, invoices (every request in the wire capture).
    replica::Account account(&st.offers, credit, boot_seconds);
    if (!machines.empty()) {
        if (berth_binary.empty()) {
            std::cerr << "berth-vast-replica: --machines needs --berth PATH" << std::endl;
            return 2;
        }
        account.use_machines(machines, berth_binary);
    }
    st.instance_key = [&account](const std::string &k) { return account.instance_of_key(k); };
    auto body_of = [](const httplib::Request &req) {
        return req.body.empty() ? json::object() : json::parse(req.body);
    };
    auto send = [](httplib::Response &res, const replica::Reply &r) {
        reply(res, r.status, r.body);
    };
    auto num = [](const httplib::Request &req, int i) { return std::stoll(req.matches[i].str()); };
    svr.Put(R"(/api/v0/asks/(\d+)/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                send(res, account.create(num(req, 1), body_of(req)));
            }));
    svr.Get(R"(/api/v0/instances/?)",
            guarded(st, true, [&](const httplib::Request &, httplib::Response &res) {
                send(res, account.list());
            }));
    svr.Get(R"(/api/v1/instances/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                int limit = req.has_param("limit") ? std::stoi(req.get_param_value("limit")) : 25;
                long long after = req.has_param("after_token")
                                      ? std::stoll(req.get_param_value("after_token"))
                                      : 0;
                json filters = req.has_param("select_filters")
                                   ? json::parse(req.get_param_value("select_filters"))
                                   : json::object();
                send(res, account.list_v1(limit, after, filters));
            }));
    svr.Get(R"(/api/v0/instances/(\d+)/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                send(res, account.show(num(req, 1)));
            }));
    svr.Put(R"(/api/v0/instances/(\d+)/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                send(res, account.update(num(req, 1), body_of(req)));
            }));
    svr.Delete(R"(/api/v0/instances/(\d+)/?)",
               guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                   send(res, account.destroy(num(req, 1)));
               }));
    svr.Get(R"(/api/v0/ssh/?)",
            guarded(st, true, [&](const httplib::Request &, httplib::Response &res) {
                send(res, account.ssh_keys());
            }));
    svr.Post(R"(/api/v0/ssh/?)",
             guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                 send(res, account.add_ssh_key(body_of(req)));
             }));
    svr.Delete(R"(/api/v0/ssh/(\d+)/?)",
               guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                   send(res, account.delete_ssh_key(num(req, 1)));
               }));
    svr.Post(R"(/api/v0/instances/(\d+)/ssh/?)",
             guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                 send(res, account.attach_key(num(req, 1), body_of(req)));
             }));
    svr.Delete(R"(/api/v0/instances/(\d+)/ssh/(\d+)/?)",
               guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                   send(res, account.detach_key(num(req, 1), num(req, 2)));
               }));
    svr.Put(R"(/api/v0/instances/(?:bid_price|reboot|recycle)/(\d+)/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                send(res, account.simple_ok(num(req, 1)));
            }));
    svr.Get(R"(/api/v0/users/current/?)",
            guarded(st, true, [&](const httplib::Request &, httplib::Response &res) {
                send(res, account.user(st.api_key));
            }));
    svr.Get(R"(/api/v0/users/me/invoices/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                double now = replica::now_seconds();
                double since =
                    req.has_param("sdate") ? std::stod(req.get_param_value("sdate")) : now - 86400;
                double until =
                    req.has_param("edate") ? std::stod(req.get_param_value("edate")) : now;
                send(res, account.invoices(since, until));
            }));
    svr.Put(
        R"(/api/v0/commands/copy_direct/?)",
        guarded(st, true, [&](const httplib::Request &, httplib::Response &res) {
            reply(res, 200, {{"success", true}, {"msg", "Sending copy command to the instances."}});
        }));
    svr.Post("/_replica/faults",
             [&st, &account](const httplib::Request &req, httplib::Response &res) {
                 auto j = json::parse(req.body, nullptr, false);
                 std::lock_guard lk(st.mu);
                 st.faults.clear();
                 st.after.clear();
                 if (j.is_object()) {
                     for (const auto &f : j.value("next", json::array()))
                         st.faults.push_back(f.get<int>());
                     for (const auto &f : j.value("after", json::array()))
                         st.after.push_back(f.get<int>());
                     st.delay_ms = j.value("delay_ms", 0);
                     st.late_ms = j.value("late_ms", 0);
                     st.trickle_ms = j.value("trickle_ms", 0);
                     st.bodies.clear();
                     for (const auto &b : j.value("body", json::array()))
                         st.bodies.push_back(b.is_string() ? b.get<std::string>() : b.dump());
                     st.match = j.value("match", std::string());
                     if (j.contains("credit_left"))
                         account.set_credit_left(j["credit_left"].get<double>());
                     if (j.contains("outbid")) account.set_outbid(j["outbid"].get<bool>());
                     for (const auto &f : j.value("fate", json::array()))
                         account.push_fate(f.get<std::string>());
                     for (const auto &f : j.value("list", json::array()))
                         account.push_list_fault(f.get<std::string>());
                 }
                 reply(res, 200, {{"success", true}});
             });
    svr.set_error_handler([](const httplib::Request &, httplib::Response &res) {
        if (res.body.empty()) error(res, res.status, "not_found", "no such endpoint");
    });
    if (port == 0)
        port = svr.bind_to_any_port(host);
    else if (!svr.bind_to_port(host, port))
        port = -1;
    if (port < 0) {
        std::cerr << "berth-vast-replica: cannot listen on " << host << std::endl;
        return 1;
    }
    std::cout << "listening on " << host << ":" << port << std::endl;
    svr.listen_after_bind();
    return 0;
}
