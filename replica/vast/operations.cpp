// The replica's account, beyond create/show/stop/start/destroy: what else the official client
// calls (SPEC §5, the OpenAPI files of vast-ai/docs), each doing on a real machine what Vast
// does: reboot restarts the container (onstart runs again), recycle makes it anew, a bid change
// re-decides who has the GPU, logs and execute answer through a result_url, copy copies.
#include "instances.hpp"

#include "provider/local/local_provider.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <ctime>

namespace replica {

using nlohmann::json;

namespace {

Reply bad_id() {
    return api_error(400, "invalid_id", "Invalid instance id.");
}

// "C.123", "123" or 123: an instance id; 0 for anything else.
long long instance_ref(const json &v) {
    if (v.is_number_integer()) return v.get<long long>();
    if (!v.is_string()) return 0;
    std::string s = v.get<std::string>();
    if (s.rfind("C.", 0) == 0) s = s.substr(2);
    if (s.empty() || s.size() > 18 || s.find_first_not_of("0123456789") != std::string::npos)
        return 0;
    return std::stoll(s);
}

// A path inside a machine: absolute, no "..", no NUL.
bool clean_machine_path(const std::string &p) {
    if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos) return false;
    for (const auto &part : berth::str::split(p, '/'))
        if (part == "..") return false;
    return true;
}

} // namespace

std::string Account::put_blob(const std::string &text) {
    std::string name = berth::random_hex(16) + ".log";
    m_blobs[name] = text;
    return m_base_url + "/_blobs/" + name;
}

std::optional<std::string> Account::blob(const std::string &name) {
    std::lock_guard lk(m_mu);
    auto it = m_blobs.find(name);
    if (it == m_blobs.end()) return std::nullopt;
    return it->second;
}

// A path of a running real machine as the host sees it.
std::optional<std::filesystem::path> Account::machine_path(Instance &i, const std::string &path) {
    if (i.machine.empty() || !m_local || !clean_machine_path(path)) return std::nullopt;
    auto root = m_local->machine_root(i.machine);
    if (!root) return std::nullopt;
    return *root / path.substr(1);
}

Reply Account::bulk_state(const json &body) {
    std::lock_guard lk(m_mu);
    if (!body.contains("ids") || !body["ids"].is_array())
        return api_error(400, "invalid_args", "ids must be a list of instance ids");
    json state = {{"state", body.value("state", std::string())}};
    for (const auto &v : body["ids"]) {
        auto r = update(instance_ref(v), state);
        if (r.status != 200) return r;
    }
    return {200, {{"success", true}}};
}

Reply Account::bulk_destroy(const json &body) {
    std::lock_guard lk(m_mu);
    if (!body.contains("instance_ids") || !body["instance_ids"].is_array())
        return api_error(400, "invalid_args", "instance_ids must be a list of instance ids");
    for (const auto &v : body["instance_ids"]) {
        auto r = destroy(instance_ref(v));
        if (r.status != 200) return r;
    }
    return {200, {{"success", true}}};
}

// POST /asks/bulk/: one instance per offer id, all or nothing.
Reply Account::bulk_create(const json &body) {
    std::lock_guard lk(m_mu);
    if (!body.contains("ids") || !body["ids"].is_array() || body["ids"].empty())
        return api_error(400, "invalid_args", "ids must be a list of offer ids");
    for (const auto &v : body["ids"])
        if (!v.is_number_integer() || offer_rented(v.get<long long>()))
            return Reply{404,
                         {{"success", false},
                          {"error", "invalid_args"},
                          {"msg", "error 404/3603: no_such_ask Instance type by id " + v.dump() +
                                      " is not available."},
                          {"ask_id", v}}};
    json one = body;
    one.erase("ids");
    json made = json::array();
    for (const auto &v : body["ids"]) {
        auto r = create_locked(v.get<long long>(), one);
        if (r.status != 200) return r;
        made.push_back(r.body["new_contract"]);
    }
    return {200, {{"success", true}, {"new_contracts", made}}};
}

// Stops and starts the container without losing the GPU: onstart runs again.
Reply Account::reboot(long long id) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return api_error(400, "invalid_args", "invalid instance_id");
    double now = now_seconds();
    advance(*i, now);
    if (i->intended != "running" || (i->actual != "running" && i->actual != "loading"))
        return api_error(400, "invalid_args",
                         "Instance " + std::to_string(id) + " is not running.");
    i->log += "rebooting\n";
    if (i->proxy) {
        i->proxy->target(0);
        i->direct->target(0);
    }
    if (!i->machine.empty()) {
        (void)m_local->stop(i->machine);
        auto s = m_local->start(i->machine);
        if (!s) i->status_msg = "Error: " + s.error().what + "\n";
    }
    i->actual = "loading";
    i->loading_since = now;
    i->status_msg = i->status_msg.empty() ? "rebooting\n" : i->status_msg;
    return {200, {{"success", true}}};
}

// Destroys and makes the container again in place from its image: the disk starts empty.
Reply Account::recycle(long long id) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return bad_id();
    double now = now_seconds();
    advance(*i, now);
    if (i->intended != "running") return bad_id();
    i->log += "recycling: pulling " + i->request.value("image", std::string()) + " again\n";
    if (i->proxy) {
        i->proxy->target(0);
        i->direct->target(0);
    }
    if (!i->machine.empty()) {
        auto d = m_local->destroy(i->machine);
        if (!d) return api_error(500, "server_error", "could not recycle: " + d.error().what);
        boot_real(*i, now);
    } else {
        i->actual = "loading";
        i->loading_since = now;
    }
    return {200, {{"success", true}}};
}

Reply Account::change_bid(long long id, const json &body) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return api_error(404, "no_such_instance", "Instance with that ID does not exist.");
    double price = 0;
    if (body.contains("price") && body["price"].is_number()) price = body["price"].get<double>();
    if (price < 0.001) return api_error(400, "invalid_args", "Please set a bid price >= 0.001.");
    if (price > 128) return api_error(400, "invalid_args", "Please set a bid price <= 128.");
    if (i->bid < 0)
        return api_error(400, "invalid_args",
                         "Instance " + std::to_string(id) +
                             " is on-demand; only interruptible instances have a bid.");
    double now = now_seconds();
    advance(*i, now);
    meter(*i, now); // the old price up to now, the new one after
    i->bid = price;
    decide_bid(*i, now);
    return {200, {{"success", true}}};
}

// A reserved instance: prepaid credit moves from the account into the instance's deposit, for
// a discount that grows with the months it covers (the CLI's help: 0.2 for 1, 0.3 for 3).
Reply Account::prepay(long long id, const json &body) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return Reply{400, {{"success", false}, {"msg", "No such instance"}}};
    double amount =
        body.contains("amount") && body["amount"].is_number() ? body["amount"].get<double>() : 0.0;
    if (amount <= 0) return api_error(400, "invalid_args", "amount must be positive");
    if (i->bid >= 0)
        return api_error(400, "invalid_args", "interruptible instances cannot be reserved");
    if (amount > m_credit - billed_total())
        return Reply{411, {{"success", false}, {"msg", "Insufficient credit"}}};
    i->prepaid += amount;
    m_credit -= amount;
    double monthly = std::max(1e-9, i->offer.value("dph_base", 0.0) * 720.0);
    double months = i->prepaid / monthly;
    double rate = months >= 3 ? 0.3 : months >= 1 ? 0.2 : 0.2 * months;
    return {200, {{"success", true}, {"timescale", months}, {"discount_rate", rate}}};
}

Reply Account::deposit(long long id) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return api_error(404, "no_such_instance", "Instance not found.");
    double monthly = std::max(1e-9, i->offer.value("dph_base", 0.0) * 720.0);
    double months = i->prepaid / monthly;
    double rate = months >= 3 ? 0.3 : months >= 1 ? 0.2 : 0.2 * months;
    return {200,
            {{"success", true},
             {"refundable_deposit", i->prepaid},
             {"total_discount", i->prepaid * rate},
             {"discount_months", static_cast<int>(months)}}};
}

// A new image, env or onstart: the container is made again from them (recycle).
Reply Account::update_template(long long id, const json &body) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return bad_id();
    bool changed = false;
    for (const char *k : {"image", "onstart", "env", "args", "template_id", "template_hash_id"})
        if (body.contains(k) && !body[k].is_null()) {
            i->request[k] = body[k];
            changed = true;
        }
    if (!changed)
        return api_error(400, "invalid_args", "nothing to update: give an image, env or onstart");
    if (body.contains("onstart") && body["onstart"].is_string())
        i->spec.onstart = body["onstart"].get<std::string>();
    if (i->intended == "running") {
        auto r = recycle(id);
        if (r.status != 200) return r;
    }
    return {200, {{"success", true}, {"updated_instance", {{"id", id}}}}};
}

// Logs go to a result_url (S3 on Vast; the replica serves it), filtered and tailed as asked.
Reply Account::request_logs(long long id, const json &body) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return Reply{404, {{"error", "invalid_id"}, {"msg", "Invalid instance id."}}};
    advance(*i, now_seconds());
    std::string text = i->log;
    bool daemon = body.value("daemon_logs", std::string()) == "true";
    if (!daemon && !i->machine.empty())
        if (auto root = m_local->machine_root(i->machine))
            if (auto onstart = berth::fs::read_file(*root / "var/log/onstart.log"))
                text += *onstart;
    if (daemon) text = "kaalia: instance " + std::to_string(id) + " " + i->actual + "\n";
    std::string filter = body.value("filter", std::string());
    std::vector<std::string> lines;
    for (const auto &l : berth::str::split(text, '\n'))
        if (!l.empty() && (filter.empty() || l.find(filter) != std::string::npos))
            lines.push_back(l);
    std::size_t tail = 1000;
    if (body.contains("tail")) {
        std::string t =
            body["tail"].is_string() ? body["tail"].get<std::string>() : body["tail"].dump();
        if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos || t.size() > 9)
            return api_error(400, "invalid_args", "tail must be a number of lines");
        tail = std::stoul(t);
    }
    if (lines.size() > tail) lines.erase(lines.begin(), lines.end() - static_cast<long>(tail));
    std::string out;
    for (const auto &l : lines)
        out += l + "\n";
    return {200,
            {{"success", true},
             {"result_url", put_blob(out)},
             {"msg", "Logs are being uploaded; wait a few seconds and then view the result_url"}}};
}

// A constrained command (ls, du, rm, as the client's help lists) run on the host against the
// container's disk; its output goes to a result_url, host paths prefixed by writeable_path.
Reply Account::execute(long long id, const json &body) {
    std::lock_guard lk(m_mu);
    auto *i = find(id);
    if (!i) return api_error(400, "invalid_container_id", "Invalid container id.");
    std::string command = body.value("command", std::string());
    if (command.empty() || command.size() > 512)
        return api_error(400, "invalid_args", "Invalid command given.");
    auto words = berth::str::split(command, ' ');
    words.erase(std::remove(words.begin(), words.end(), std::string()), words.end());
    if (words.empty() || (words[0] != "ls" && words[0] != "du" && words[0] != "rm") ||
        command.find_first_of(";|&`$<>\\\n'\"") != std::string::npos)
        return api_error(400, "invalid_args", "Invalid command given.");
    advance(*i, now_seconds());
    std::string out, writeable = "/var/lib/docker/overlay2/" + std::to_string(id) + "/merged";
    if (!i->machine.empty()) {
        auto root = m_local->machine_root(i->machine);
        if (!root) return api_error(400, "invalid_container", "The instance is not running.");
        writeable = root->string();
        std::vector<std::string> argv{"chroot", writeable};
        argv.insert(argv.end(), words.begin(), words.end());
        auto r =
            berth::proc::run(argv, {.input = {}, .env = {}, .timeout = std::chrono::seconds(20)});
        out = r ? r->out + r->err : r.error().what + "\n";
    } else {
        out = words[0] == "ls" ? "total 0\n" : "";
    }
    return {200,
            {{"success", true},
             {"writeable_path", writeable},
             {"result_url", put_blob(out)},
             {"msg", "Command is executing, wait a few seconds and then view the result_url"}}};
}

// Instance to instance: the files really move (cp -a, rsync's trailing-slash meaning).
Reply Account::copy_direct(const json &body) {
    std::lock_guard lk(m_mu);
    long long src = instance_ref(body.value("src_id", json())),
              dst = instance_ref(body.value("dst_id", json()));
    auto *s = find(src);
    auto *d = find(dst);
    if (!s || !d) return api_error(400, "invalid_args", "Invalid src_id or dst_id.");
    std::string sp = body.value("src_path", std::string()),
                dp = body.value("dst_path", std::string());
    if (!clean_machine_path(sp)) return api_error(400, "invalid_args", "Invalid src_path.");
    if (!clean_machine_path(dp)) return api_error(400, "invalid_args", "Invalid dst_path.");
    if (!s->machine.empty() || !d->machine.empty()) {
        auto from = machine_path(*s, sp), to = machine_path(*d, dp);
        if (!from || !to)
            return api_error(400, "invalid_args", "both instances must be running to copy");
        std::error_code ec;
        std::filesystem::create_directories(*to, ec);
        std::string source = from->string();
        if (!sp.empty() && sp.back() == '/') source += ".";
        auto r = berth::proc::run({"cp", "-a", "--", source, to->string() + "/"},
                                  {.input = {}, .env = {}, .timeout = std::chrono::seconds(300)});
        if (!r || r->status != 0)
            return api_error(500, "copy_failed", r ? berth::str::trim(r->err) : r.error().what);
        d->log += "copied " + sp + " from instance " + std::to_string(src) + " to " + dp + "\n";
    }
    return {200,
            {{"success", true},
             {"msg", "Remote to Remote copy initiated - check instance status bar for progress "
                     "updates (~30 seconds delayed)."}}};
}

Reply Account::cancel_copy(const json &body) {
    std::lock_guard lk(m_mu);
    if (!find(instance_ref(body.value("dst_id", json()))))
        return api_error(400, "invalid_args", "Invalid dst_id.");
    return {200, {{"success", true}}};
}

// Local <-> instance: Vast answers where the host's rsync endpoint is, and the client runs
// rsync over ssh as vastai_kaalia to it. The replica's real machines serve that endpoint on
// their direct SSH port (the vastai_kaalia account and an rsync module named by the instance
// id are made at boot).
Reply Account::rsync(const json &body) {
    std::lock_guard lk(m_mu);
    json src = body.value("src_id", json()), dst = body.value("dst_id", json());
    bool src_local = src.is_null() || src == "local", dst_local = dst.is_null() || dst == "local";
    if (src_local == dst_local)
        return api_error(400, "invalid_args", "one side of an rsync copy must be local");
    long long id = instance_ref(src_local ? dst : src);
    auto *i = find(id);
    if (!i) return api_error(400, "invalid_args", "Invalid instance id.");
    advance(*i, now_seconds());
    if (i->actual != "running")
        return api_error(400, "invalid_args", "The instance must be running to copy.");
    int port = i->direct ? i->direct->port() : i->sim_port + 1;
    std::string side = src_local ? "dst" : "src";
    return {200,
            {{"success", true},
             {side + "_addr", "127.0.0.1"},
             {side + "_port", port},
             {"msg", "rsync endpoint ready"}}};
}

// Account environment variables (secrets): GET lists, POST adds, PUT changes, DELETE removes.
Reply Account::secrets(const std::string &method, const json &body) {
    std::lock_guard lk(m_mu);
    if (method == "GET") {
        json out = json::object();
        for (const auto &[k, v] : m_secrets)
            out[k] = v;
        return {200, {{"success", true}, {"secrets", out}}};
    }
    std::string key = body.value("key", std::string());
    if (key.empty() || key.size() > 128 ||
        key.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") !=
            std::string::npos)
        return api_error(400, "invalid_args", "Invalid key name.");
    if (method == "DELETE") {
        if (!m_secrets.erase(key))
            return api_error(404, "not_found", "Environment variable " + key + " not found.");
        return {200, {{"success", true}, {"msg", "Environment variable deleted successfully."}}};
    }
    if (!body.contains("value") || !body["value"].is_string())
        return api_error(400, "invalid_args", "value must be a string");
    bool exists = m_secrets.count(key) > 0;
    if (method == "POST" && exists)
        return api_error(400, "invalid_args", "Environment variable " + key + " already exists.");
    if (method == "PUT" && !exists)
        return api_error(404, "not_found", "Environment variable " + key + " not found.");
    m_secrets[key] = body["value"].get<std::string>();
    return {200,
            {{"success", true},
             {"msg", std::string("Environment variable ") +
                         (method == "POST" ? "created" : "updated") + " successfully."}}};
}

// The newer billing lists (show invoices-v1): invoices are payments and credits, charges are
// per instance with their parts as items; newest first, `limit` a page, `after_token` on.
Reply Account::invoices_v1(const json &filters, int limit, long long after, bool charges) {
    std::lock_guard lk(m_mu);
    double now = now_seconds(), gte = 0, lte = 1e18;
    if (filters.is_object() && filters.contains("when") && filters["when"].is_object()) {
        const auto &w = filters["when"];
        if (w.contains("gte") && w["gte"].is_number()) gte = w["gte"].get<double>();
        if (w.contains("lte") && w["lte"].is_number()) lte = w["lte"].get<double>();
    }
    std::vector<json> rows;
    if (charges) {
        std::vector<json> all = m_charges;
        for (auto &[id, i] : m_instances) {
            advance(i, now);
            all.push_back(charge_row(i, now));
        }
        for (const auto &c : all) {
            double rent = c.value("rent", 0.0), storage = c.value("storage", 0.0),
                   transfer = c.value("transfer", 0.0);
            auto item = [&](const char *type, double amount, const std::string &what) {
                return json{
                    {"start", c["start"]},        {"end", c["end"]},       {"type", type},
                    {"source", nullptr},          {"description", what},   {"amount", amount},
                    {"metadata", json::object()}, {"items", json::array()}};
            };
            char gpu[96];
            std::snprintf(gpu, sizeof gpu, "%.3f hours at $%.3f/hour", c.value("quantity", 0.0),
                          c.value("rate", 0.0));
            std::string iid = c["instance_id"].dump();
            rows.push_back({{"start", c["start"]},
                            {"end", c["end"]},
                            {"type", "instance"},
                            {"source", "instance-" + iid},
                            {"description", "Instance " + iid + " Charges"},
                            {"amount", c["amount"]},
                            {"metadata", {{"label", c.value("label", std::string())}}},
                            {"items", json::array({item("gpu", rent, gpu),
                                                   item("storage", storage, "disk storage"),
                                                   item("bandwidth", transfer, "transfer")})}});
        }
    } else {
        rows.push_back({{"start", m_opened},
                        {"end", m_opened},
                        {"type", "credit"},
                        {"source", "replica"},
                        {"description", "Prepaid credit"},
                        {"amount", -m_initial_credit},
                        {"metadata", {{"invoice_id", 1}, {"service", "replica"}}},
                        {"items", json::array()}});
    }
    std::vector<json> kept;
    for (auto &r : rows)
        if (r.value("end", 0.0) >= gte && r.value("start", 0.0) <= lte) kept.push_back(r);
    std::stable_sort(kept.begin(), kept.end(), [](const json &a, const json &b) {
        return a.value("end", 0.0) > b.value("end", 0.0);
    });
    limit = std::clamp(limit <= 0 ? 20 : limit, 1, 100);
    json page = json::array();
    long long idx = 0;
    for (const auto &r : kept) {
        if (idx++ < after) continue;
        if (static_cast<int>(page.size()) == limit) break;
        page.push_back(r);
    }
    long long next = after + static_cast<long long>(page.size());
    return {200,
            {{"success", true},
             {"count", page.size()},
             {"total", kept.size()},
             {"next_token",
              next < static_cast<long long>(kept.size()) ? json(std::to_string(next)) : json()},
             {"results", page}}};
}

Reply Account::ipaddrs() {
    std::lock_guard lk(m_mu);
    std::time_t t = static_cast<std::time_t>(m_opened);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return {200,
            {{"success", true},
             {"results",
              // The OpenAPI's fields, and the ones the client's table shows.
              json::array({{{"id", 1},
                            {"user_id", 1},
                            {"ip_address", "127.0.0.1"},
                            {"timestamp", buf},
                            {"ip", "127.0.0.1"},
                            {"first_seen", buf},
                            {"first_location", "loopback"}}})}}};
}

} // namespace replica
