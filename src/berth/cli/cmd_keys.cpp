// berth keys generate|import|list|test
#include "agent/keys.hpp"
#include "agent/persist.hpp"
#include "cli/commands.hpp"
#include "core/exit_codes.hpp"
#include "core/paths.hpp"
#include "util/term.hpp"

#include <cstdlib>
#include <unistd.h>

namespace berth::cli {

namespace {

// Keys belong in the store: when one is set up and ~/.ssh is not yet persisted, persist it
// first, so a key made now survives the machine.
void ensure_ssh_persisted(Context &ctx) {
    auto store = find_store(ctx.store_setting());
    if (!store) {
        if (!ctx.json)
            warn("no store: keys stay in ~/.ssh and die with this machine (`berth persist init "
                 "--store DIR`)");
        return;
    }
    auto m = load_manifest(*store);
    if (!m || m->items.empty()) {
        if (!ctx.json) warn("~/.ssh is not persisted yet: run `berth persist init` to keep keys");
        return;
    }
    if (m->find(".ssh")) return;
    MigrationObserver quiet;
    auto r = must(persist_add(*store, ctx.home(), ".ssh", ItemKind::dir, quiet));
    if (!ctx.json) say("persisted ~/.ssh (" + std::string(action_name(r.action)) + ")");
}

std::string default_comment() {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    const char *user = std::getenv("USER");
    return std::string(user && *user ? user : "berth") + "@" + host;
}

nlohmann::json key_json(const KeyInfo &k) {
    return {{"name", k.name},
            {"type", k.type},
            {"fingerprint", k.fingerprint},
            {"comment", k.comment},
            {"public_key", k.public_key},
            {"has_private", k.has_private}};
}

void cmd_generate(Context &ctx, const std::string &name, std::string comment) {
    ensure_ssh_persisted(ctx);
    if (comment.empty()) comment = default_comment();
    auto k = must(keys_generate(ctx.home() / ".ssh", name, comment));
    if (ctx.json) {
        auto j = key_json(k);
        j["schema"] = "berth.keys.generate/1";
        print_json(j);
        return;
    }
    say("created ~/.ssh/" + k.name + " (" + k.type + " " + k.fingerprint + ")");
    say("add this public key to GitHub (Settings > SSH and GPG keys > New SSH key):");
    say("  " + k.public_key);
    say("then check it with `berth keys test`");
}

void cmd_import(Context &ctx, const std::vector<std::string> &files) {
    // Validate before persisting anything: bad input changes nothing.
    for (const auto &f : files)
        if (::access(f.c_str(), R_OK) != 0)
            throw Abort(Error{f + ": cannot read it", "check the path", 1});
    ensure_ssh_persisted(ctx);
    auto r = must(keys_import(ctx.home() / ".ssh", files));
    if (ctx.json) {
        print_json({{"schema", "berth.keys.import/1"},
                    {"written", r.written},
                    {"derived", r.derived},
                    {"unchanged", r.unchanged},
                    {"warnings", r.warnings}});
        return;
    }
    for (const auto &w : r.written)
        say("imported ~/.ssh/" + w);
    for (const auto &d : r.derived)
        say("derived  ~/.ssh/" + d + " from its private key");
    for (const auto &u : r.unchanged)
        say("already there: ~/.ssh/" + u);
    for (const auto &w : r.warnings)
        warn(w);
}

void cmd_list(Context &ctx) {
    auto keys = must(keys_list(ctx.home() / ".ssh"));
    if (ctx.json) {
        nlohmann::json arr = nlohmann::json::array();
        for (const auto &k : keys)
            arr.push_back(key_json(k));
        print_json({{"schema", "berth.keys.list/1"}, {"keys", arr}});
        return;
    }
    if (keys.empty()) say("no keys in ~/.ssh (create one with `berth keys generate`)");
    for (const auto &k : keys) {
        say(k.name + "  " + k.type + "  " + k.fingerprint + "  " + k.comment +
            (k.has_private ? "" : "  (public only)"));
        say("  " + k.public_key);
    }
}

void cmd_test(Context &ctx, std::string host, int port) {
    KeyTestOptions opt;
    opt.host = host.empty() ? ctx.config.str("keys.test_host") : host;
    opt.port = port;
    opt.key_dir = ctx.home() / ".ssh";
    opt.known_hosts = paths::data_home() / "berth" / "known_hosts";
    if (const char *f = std::getenv("BERTH_SSH_CONFIG")) opt.ssh_config = f;
    auto r = must(keys_test(opt));
    bool ok = r.cause == KeyTestCause::ok;
    if (ctx.json)
        print_json({{"schema", "berth.keys.test/1"},
                    {"host", opt.host},
                    {"ok", ok},
                    {"cause", cause_name(r.cause)},
                    {"message", r.message}});
    else if (ok)
        say(term::paint("ok", term::Color::green) + ": " + r.message);
    else
        std::fprintf(stderr, "berth: %s: %s\n", cause_name(r.cause), r.message.c_str());
    if (!ok) ctx.exit_code = exit_code::problems;
}

} // namespace

void add_keys(CLI::App &app, Context &ctx) {
    auto *k = command(app, "keys");
    k->require_subcommand(1);

    auto *gen = subcommand(*k, "keys", "generate");
    static std::string name = "id_ed25519", comment;
    gen->add_option("--name", name, "file name in ~/.ssh")->capture_default_str();
    gen->add_option("--comment", comment, "key comment (default user@host)");
    gen->callback([&ctx] { cmd_generate(ctx, name, comment); });

    auto *imp = subcommand(*k, "keys", "import");
    static std::vector<std::string> files;
    imp->add_option("FILE", files, "key files, e.g. id_rsa id_rsa.pub")->required();
    imp->callback([&ctx] { cmd_import(ctx, files); });

    subcommand(*k, "keys", "list")->callback([&ctx] { cmd_list(ctx); });

    auto *t = subcommand(*k, "keys", "test");
    static std::string host;
    static int port = 0;
    t->add_option("HOST", host, "[user@]host (default: keys.test_host, github.com)");
    t->add_option("-p,--port", port, "SSH port");
    t->callback([&ctx] { cmd_test(ctx, host, port); });
}

} // namespace berth::cli
