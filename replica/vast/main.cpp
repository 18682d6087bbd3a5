// berth-vast-replica: a Vast.ai API server owned by the project, for tests and for trying berth
// without an account (../../shared/vastai/SPEC.md §10). It serves the real recorded offers.
// This first part serves search (POST /api/v0/bundles/, GET /bundles?q=, PUT /search/asks/),
// gpu names, auth as the API does it, and fault injection. Instances come next (issue 4).
//
// usage: berth-vast-replica --offers FILE [--gpu-names FILE] [--port N] [--api-key KEY]
// Prints "listening on 127.0.0.1:PORT" once it accepts connections.
// Test control: POST /_replica/faults {"next":[429,503,...],"delay_ms":N} makes the next
// responses fail with those statuses (or answer slowly).
#include "instances.hpp"
#include "search.hpp"

#include <CLI/CLI.hpp>
#include <deque>
#include <fstream>
#include <httplib.h>
#include <iostream>
#include <mutex>
#include <sstream>
#include <thread>

using nlohmann::json;

namespace {

struct State {
    std::vector<json> offers;
    json gpu_names = json::array();
    std::string api_key;
    std::mutex mu;
    std::deque<int> faults;
    int delay_ms = 0;
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
    return !key.empty() && key == st.api_key;
}

// Runs the shared preamble (faults, auth) and then the handler.
httplib::Server::Handler
guarded(State &st, bool needs_auth,
        std::function<void(const httplib::Request &, httplib::Response &)> fn) {
    return [&st, needs_auth, fn](const httplib::Request &req, httplib::Response &res) {
        int fault = 0, delay = 0;
        {
            std::lock_guard lk(st.mu);
            if (!st.faults.empty()) {
                fault = st.faults.front();
                st.faults.pop_front();
            }
            delay = st.delay_ms;
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
    svr.Post("/_replica/faults", [&st](const httplib::Request &req, httplib::Response &res) {
        auto j = json::parse(req.body, nullptr, false);
        std::lock_guard lk(st.mu);
        st.faults.clear();
        if (j.is_object()) {
            for (const auto &f : j.value("next", json::array()))
                st.faults.push_back(f.get<int>());
            st.delay_ms = j.value("delay_ms", 0);
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
