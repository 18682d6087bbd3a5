// berth-vast-replica: a Vast.ai API server owned by the project, for tests and for trying berth
// without an account (../../shared/vastai/SPEC.md §10). It serves the real recorded offers.
// It serves search (POST /api/v0/bundles/, GET /bundles?q=, PUT /search/asks/), gpu names,
// auth as the API does it, the account (instances, keys, user, invoices; see instances.hpp),
// every other consumer command of the official client (operations.cpp), result_url blobs at
// /_blobs/, and fault injection. tests/e2e/vast_cli.sh runs the official client against it.
//
// usage: berth-vast-replica --offers FILE [--gpu-names FILE] [--port N] [--api-key KEY]
//        [--machines DIR --berth PATH]   (real instances: local-provider machines under DIR)
//        [--sshd-lag S]   (a real machine's sshd answers S seconds after it is running; 3)
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
//   "outbid": true|false|P    another renter bids P $/h (true: always more; false: no one):
//                             interruptible instances bidding less stop, and resume when
//                             theirs is highest again (a bid change re-decides)
//   "take": [offer ids]       another renter rents these offers (search drops them; renting
//                             them fails as on Vast)
//   "snipe": N                the next N rentals lose their offer to another renter just
//                             before they arrive (the race between search and rent)
//   "sshd_lag": S             real machines' sshd answers S seconds after `running`
//   "credit_left": D          the account has D dollars left from now (at 0 Vast stops
//                             running instances)
#include "instances.hpp"
#include "search.hpp"
#include "util/hash.hpp"

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
    double credit = 25.0, boot_seconds = 2.0, sshd_lag = 3.0;
    app.add_option("--sshd-lag", sshd_lag,
                   "seconds a real machine's sshd answers after it is reported running");
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
        // The recording's contracts end at 2024 dates: move them by the recording's age, so
        // an offer has as many days left now as it had then (end_date - duration is the moment
        // it was recorded).
        double now = replica::now_seconds();
        for (auto &o : st.offers) {
            double end = o.value("end_date", 0.0), left = o.value("duration", 0.0);
            if (end > 0 && left > 0) o["end_date"] = now + left;
        }
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
    replica::Account account(&st.offers, credit, boot_seconds);
    account.set_sshd_lag(sshd_lag);
    auto do_search = [&st, &account](const json &q, httplib::Response &res) {
        reply(
            res, 200,
            {{"success", true}, {"offers", replica::search(st.offers, q, [&account](long long id) {
                                     return account.offer_rented(id);
                                 })}});
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
    auto put_id = [&](const char *path, std::function<replica::Reply(long long, const json &)> fn) {
        svr.Put(path,
                guarded(st, true, [&, fn](const httplib::Request &req, httplib::Response &res) {
                    send(res, fn(num(req, 1), body_of(req)));
                }));
    };
    put_id(R"(/api/v0/instances/reboot/(\d+)/?)",
           [&](long long id, const json &) { return account.reboot(id); });
    put_id(R"(/api/v0/instances/recycle/(\d+)/?)",
           [&](long long id, const json &) { return account.recycle(id); });
    put_id(R"(/api/v0/instances/bid_price/(\d+)/?)",
           [&](long long id, const json &b) { return account.change_bid(id, b); });
    put_id(R"(/api/v0/instances/prepay/(\d+)/?)",
           [&](long long id, const json &b) { return account.prepay(id, b); });
    put_id(R"(/api/v0/instances/update_template/(\d+)/?)",
           [&](long long id, const json &b) { return account.update_template(id, b); });
    put_id(R"(/api/v0/instances/request_logs/(\d+)/?)",
           [&](long long id, const json &b) { return account.request_logs(id, b); });
    put_id(R"(/api/v0/instances/command/(\d+)/?)",
           [&](long long id, const json &b) { return account.execute(id, b); });
    svr.Get(R"(/api/v0/instances/balance/(\d+)/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                send(res, account.deposit(num(req, 1)));
            }));
    svr.Get(R"(/api/v0/instances/(\d+)/ssh/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                send(res, account.instance_ssh_keys(num(req, 1)));
            }));
    // The plural commands: PUT /instances/ {"state", "ids"}, DELETE /instances/
    // {"instance_ids"}, POST /asks/bulk/ {"ids", ...the create body}.
    svr.Put(R"(/api/v0/instances/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                send(res, account.bulk_state(body_of(req)));
            }));
    svr.Delete(R"(/api/v0/instances/?)",
               guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                   send(res, account.bulk_destroy(body_of(req)));
               }));
    svr.Post(R"(/api/v0/asks/bulk/?)",
             guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                 send(res, account.bulk_create(body_of(req)));
             }));
    // launch instance: the best offer of the query that is still free, rented at once.
    svr.Put(R"(/api/v0/launch_instance/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                auto body = body_of(req);
                json q = body.value("q", json::object());
                auto found = replica::search(
                    st.offers, q, [&account](long long id) { return account.offer_rented(id); });
                if (found.empty())
                    return reply(res, 404,
                                 {{"success", false},
                                  {"error", "no_offers"},
                                  {"msg", "No offers match the query."}});
                json one = body;
                one.erase("q");
                send(res, account.create(found.front().value("id", 0LL), one));
            }));
    svr.Put(R"(/api/v0/commands/copy_direct/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                send(res, account.copy_direct(body_of(req)));
            }));
    svr.Delete(R"(/api/v0/commands/copy_direct/?)",
               guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                   send(res, account.cancel_copy(body_of(req)));
               }));
    svr.Put(R"(/api/v0/commands/rsync/?)",
            guarded(st, true, [&](const httplib::Request &req, httplib::Response &res) {
                send(res, account.rsync(body_of(req)));
            }));
    // The S3 stand-in that result_url links point to (no key, as a presigned URL).
    svr.Get(R"(/_blobs/([0-9a-f]+\.log))",
            [&account](const httplib::Request &req, httplib::Response &res) {
                auto b = account.blob(req.matches[1].str());
                if (!b) {
                    res.status = 404;
                    return;
                }
                res.set_content(*b, "text/plain");
            });
    // Account: env vars, IP addresses, invoices v1 and charges, templates, volumes, cloud
    // connections (a new account has none of the last two).
    for (const char *m : {"GET", "POST", "PUT", "DELETE"}) {
        std::string method = m;
        auto h =
            guarded(st, true, [&, method](const httplib::Request &req, httplib::Response &res) {
                send(res, account.secrets(method, body_of(req)));
            });
        if (method == "GET") svr.Get(R"(/api/v0/secrets/?)", h);
        if (method == "POST") svr.Post(R"(/api/v0/secrets/?)", h);
        if (method == "PUT") svr.Put(R"(/api/v0/secrets/?)", h);
        if (method == "DELETE") svr.Delete(R"(/api/v0/secrets/?)", h);
    }
    svr.Get(R"(/api/v0/users/(?:me|current|\d+)/ipaddrs/?)",
            guarded(st, true, [&](const httplib::Request &, httplib::Response &res) {
                send(res, account.ipaddrs());
            }));
    auto billing = [&](bool charges) {
        return guarded(st, true, [&, charges](const httplib::Request &req, httplib::Response &res) {
            json filters = req.has_param("select_filters")
                               ? json::parse(req.get_param_value("select_filters"))
                               : json::object();
            int limit = req.has_param("limit") ? std::stoi(req.get_param_value("limit")) : 20;
            long long after = 0;
            if (req.has_param("after_token")) {
                std::string t = req.get_param_value("after_token");
                if (t.empty() || t.size() > 12 ||
                    t.find_first_not_of("0123456789") != std::string::npos)
                    return reply(res, 400,
                                 {{"success", false},
                                  {"error", "invalid_token"},
                                  {"msg", "Invalid pagination token"}});
                after = std::stoll(t);
            }
            send(res, account.invoices_v1(filters, limit, after, charges));
        });
    };
    svr.Get(R"(/api/v1/invoices/?)", billing(false));
    svr.Get(R"(/api/v0/charges/?)", billing(true));
    svr.Get(
        R"(/api/v0/template/?)",
        guarded(st, true, [&](const httplib::Request &, httplib::Response &res) {
            json t = json::array();
            long long n = 1;
            for (const char *image :
                 {"fastdotai/fastai-course", "pytorch/pytorch", "vastai/tensorflow"})
                t.push_back({{"id", n},
                             {"hash_id", berth::random_hex(16)},
                             {"name", std::string(image)},
                             {"image", image},
                             {"tag", "latest"},
                             {"runtype", "ssh_direc ssh_proxy"},
                             {"ssh_direct", true},
                             {"use_ssh", true},
                             {"jup_direct", false},
                             {"use_jupyter_lab", false},
                             {"onstart", nullptr},
                             {"env", ""},
                             {"count_created", 100 * n},
                             {"recommended", true},
                             {"private", false},
                             {"desc", std::string("the ") + image + " image"},
                             {"created_at", 1730000000.0 + static_cast<double>(n)},
                             {"creator_id", 1},
                             {"recommended_disk_space", 10.0 * static_cast<double>(n++)}});
            reply(res, 200, {{"success", true}, {"templates_found", t.size()}, {"templates", t}});
        }));
    svr.Get(R"(/api/v0/volumes/?)",
            guarded(st, true, [&](const httplib::Request &, httplib::Response &res) {
                reply(res, 200, {{"volumes", json::array()}});
            }));
    svr.Get(R"(/api/v0/users/cloud_integrations/?)",
            guarded(st, true, [&](const httplib::Request &, httplib::Response &res) {
                reply(res, 200, json::array());
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
                     if (j.contains("outbid")) {
                         const auto &o = j["outbid"];
                         account.set_competing_bid(o.is_boolean() ? (o.get<bool>() ? 1e9 : -1.0)
                                                                  : o.get<double>());
                     }
                     if (j.contains("take"))
                         account.take_offers(j["take"].get<std::vector<long long>>());
                     if (j.contains("snipe")) account.snipe(j["snipe"].get<int>());
                     if (j.contains("sshd_lag")) account.set_sshd_lag(j["sshd_lag"].get<double>());
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
    account.set_base_url("http://" + host + ":" + std::to_string(port));
    std::cout << "listening on " << host << ":" << port << std::endl;
    svr.listen_after_bind();
    return 0;
}
