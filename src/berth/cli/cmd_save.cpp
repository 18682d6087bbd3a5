// berth save | restore | snapshots | diff | verify | forget | prune
#include "cli/commands.hpp"
#include "cli/providers.hpp"
#include "cli/repo_open.hpp"
#include "engine/lifecycle.hpp"
#include "engine/workspace.hpp"
#include "store/remote_backend.hpp"
#include "store/repository.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/term.hpp"

#include <cstdio>
#include <map>
#include <unistd.h>

namespace berth::cli {

StateDb open_state();

namespace {

std::string repo_flag;

// --repo, else config `repo`, else the default directory.
std::string repo_spec(const Context &ctx) {
    if (!repo_flag.empty()) return repo_flag;
    auto c = ctx.config.str("repo");
    return c.empty() ? store::default_repo().string() : c;
}

bool show_progress(const Context &ctx) {
    return !ctx.json && ::isatty(2);
}

nlohmann::json snap_json(const store::Snapshot &s) {
    return nlohmann::json::parse(store::snapshot_json(s)); // one definition of the fields
}

void print_save(const Context &ctx, const SaveResult &res,
                std::chrono::steady_clock::time_point t0);

void progress_line(const std::string &msg) {
    if (::isatty(2)) std::fprintf(stderr, "%s\n", msg.c_str());
}

// An instance name, unless it looks like a path.
bool is_path(const std::string &s) {
    return s.find('/') != std::string::npos || s == "." || s == "..";
}

bool via_laptop = false; // save --via-laptop: not machine-direct even where it could be

void cmd_save(Context &ctx, const std::string &what, const std::vector<std::string> &paths) {
    SaveResult res;
    auto t0 = std::chrono::steady_clock::now();
    // A machine allowed to reach this SSH repository saves to it itself: the bytes never pass
    // through this laptop, which only starts the save and records the result.
    auto loc = must(store::parse_repo_location(repo_spec(ctx)));
    auto direct = is_path(what) || via_laptop ? std::nullopt : machine_access(loc);
    if (direct) {
        auto db = open_state();
        Engine e(db, registry(ctx), [](const std::string &) {});
        auto r = e.refresh(must(e.find(what)));
        const auto *row = must(registry(ctx).find(r.provider));
        if (!ctx.json) progress_line("'" + r.name + "' saves to " + loc.text + " itself");
        fill_direct_key(*direct, repo_spec(ctx));
        res = must(save_instance_direct(*direct, r, row->capabilities, paths));
        auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
        if (!spec.is_object()) spec = nlohmann::json::object();
        if (spec.value("saved_to", std::string()) != loc.text) {
            spec["saved_to"] = loc.text;
            r.spec_json = spec.dump();
            (void)db.put(r);
        }
        print_save(ctx, res, t0);
        return;
    }
    auto repo = open_repo(repo_spec(ctx), true);
    if (is_path(what)) {
        res = must(save_directory(*repo, what, show_progress(ctx)));
    } else {
        auto db = open_state();
        Engine e(db, registry(ctx), [](const std::string &) {});
        auto r = e.refresh(must(e.find(what)));
        const auto *row = must(registry(ctx).find(r.provider));
        res = must(save_instance(*repo, r, row->capabilities, paths, show_progress(ctx)));
        // The destroy guard checks the repository this machine was last saved to.
        auto spec = nlohmann::json::parse(r.spec_json, nullptr, false);
        if (!spec.is_object()) spec = nlohmann::json::object();
        if (spec.value("saved_to", std::string()) != repo->location()) {
            spec["saved_to"] = repo->location();
            r.spec_json = spec.dump();
            (void)db.put(r);
        }
    }
    print_save(ctx, res, t0);
}

void print_save(const Context &ctx, const SaveResult &res,
                std::chrono::steady_clock::time_point t0) {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (ctx.json) {
        auto j = snap_json(res.snapshot);
        j["schema"] = "berth.save/1";
        j["seconds"] = secs;
        j["bytes_read"] = res.stats.bytes_read;
        j["unchanged"] = res.tree_unchanged;
        print_json(j);
        return;
    }
    say("snapshot " + res.snapshot.id + " of " + res.snapshot.source + ": " +
        std::to_string(res.stats.files) + " files, " + str::human_bytes(res.stats.bytes) +
        "; read " + str::human_bytes(res.stats.bytes_read) + ", new " +
        str::human_bytes(res.stats.new_bytes) + " (stored " +
        str::human_bytes(res.stats.stored_bytes) + ") in " + str::human_duration(secs) +
        (res.tree_unchanged ? "; nothing changed" : ""));
}

void cmd_restore(Context &ctx, const std::string &ref, const std::string &dest) {
    auto repo = open_repo(repo_spec(ctx), false);
    auto s = must(repo->find_snapshot(ref));
    store::RestoreStats st;
    bool machine_direct = false;
    auto colon = dest.find(':');
    bool onto_path = colon != std::string::npos && !is_path(dest.substr(0, colon));
    if (onto_path || !is_path(dest)) {
        auto db = open_state();
        Engine e(db, registry(ctx), [](const std::string &) {});
        auto r = e.refresh(must(e.find(onto_path ? dest.substr(0, colon) : dest)));
        std::string target = onto_path ? dest.substr(colon + 1) : "/";
        // A machine that may read the repository itself does: the bytes skip this computer.
        auto loc = must(store::parse_repo_location(repo_spec(ctx)));
        auto direct = via_laptop ? std::nullopt : machine_access(loc);
        if (direct) {
            fill_direct_key(*direct, repo_spec(ctx), repo.get());
            if (!ctx.json) progress_line("'" + r.name + "' restores from " + loc.text + " itself");
            st = must(restore_instance_direct(*direct, r, s, target, repo.get()));
            machine_direct = true;
        } else {
            st = must(restore_instance(*repo, s, r, target, show_progress(ctx)));
        }
    } else {
        st = must(restore_directory(*repo, s, dest, show_progress(ctx)));
    }
    if (ctx.json)
        print_json({{"schema", "berth.restore/1"},
                    {"snapshot", s.id},
                    {"machine_direct", machine_direct},
                    {"files", st.files},
                    {"dirs", st.dirs},
                    {"symlinks", st.symlinks},
                    {"bytes", st.bytes}});
    else
        say("restored snapshot " + s.id + " to " + dest + ": " + std::to_string(st.files) +
            " files, " + str::human_bytes(st.bytes));
}

void cmd_snapshots(Context &ctx) {
    auto repo = open_repo(repo_spec(ctx), false);
    auto scan = repo->scan_snapshots();
    auto &all = scan.good;
    if (!scan.damaged.empty()) ctx.exit_code = 3; // listed, and reported as problems
    if (ctx.json) {
        nlohmann::json arr = nlohmann::json::array(), bad = nlohmann::json::array();
        for (const auto &s : all)
            arr.push_back(snap_json(s));
        for (const auto &[id, why] : scan.damaged)
            bad.push_back({{"id", id}, {"problem", why}});
        print_json({{"schema", "berth.snapshots/1"},
                    {"repo", repo->location()},
                    {"snapshots", arr},
                    {"damaged", bad}});
        return;
    }
    for (const auto &[id, why] : scan.damaged)
        warn(why + " (`berth forget " + (id.empty() ? std::string("ID") : id) + "` removes it)");
    if (all.empty()) {
        say("no snapshots in " + repo->location());
        return;
    }
    std::printf("%-16s %-20s %-32s %8s %10s %10s\n", "ID", "TIME (UTC)", "SOURCE", "FILES", "SIZE",
                "ADDED");
    for (const auto &s : all)
        std::printf("%-16s %-20s %-32s %8llu %10s %10s\n", s.id.c_str(),
                    s.time.substr(0, 19).c_str(),
                    (s.provider.empty() ? s.source : s.provider + " " + s.source).c_str(),
                    static_cast<unsigned long long>(s.files), str::human_bytes(s.bytes).c_str(),
                    str::human_bytes(s.stored_bytes).c_str());
}

void cmd_diff(Context &ctx, const std::string &a, const std::string &b) {
    auto repo = open_repo(repo_spec(ctx), false);
    auto sa = must(repo->find_snapshot(a)), sb = must(repo->find_snapshot(b));
    auto ta = must(repo->get_tree(sa.tree)), tb = must(repo->get_tree(sb.tree));
    std::map<std::string, const store::Entry *> ma, mb;
    for (const auto &e : ta.entries)
        ma[e.path] = &e;
    for (const auto &e : tb.entries)
        mb[e.path] = &e;
    std::vector<std::pair<char, std::string>> out;
    for (const auto &[p, e] : ma)
        if (!mb.count(p))
            out.push_back({'-', p});
        else if (e->chunks != mb[p]->chunks || e->type != mb[p]->type ||
                 e->target != mb[p]->target || e->mode != mb[p]->mode)
            out.push_back({'M', p});
    for (const auto &[p, e] : mb)
        if (!ma.count(p)) out.push_back({'+', p});
    std::sort(out.begin(), out.end(), [](auto &x, auto &y) { return x.second < y.second; });
    if (ctx.json) {
        nlohmann::json arr = nlohmann::json::array();
        for (const auto &[c, p] : out)
            arr.push_back({{"change", c == '+'   ? "added"
                                      : c == '-' ? "removed"
                                                 : "modified"},
                           {"path", p}});
        print_json({{"schema", "berth.diff/1"}, {"from", sa.id}, {"to", sb.id}, {"changes", arr}});
        return;
    }
    for (const auto &[c, p] : out)
        say(std::string(1, c) + " " + p);
    say(std::to_string(out.size()) + " change(s) from " + sa.id + " to " + sb.id);
}

void cmd_verify(Context &ctx) {
    auto repo = open_repo(repo_spec(ctx), false);
    must(repo->lock(false));
    std::unique_ptr<term::Progress> bar;
    auto rep = must(repo->verify([&](std::uint64_t n) {
        if (bar) bar->add(n);
    }));
    bool ok = rep.problems.empty();
    if (ctx.json) {
        print_json({{"schema", "berth.verify/1"},
                    {"ok", ok},
                    {"chunks", rep.chunks},
                    {"bytes", rep.bytes},
                    {"trees", rep.trees},
                    {"snapshots", rep.snapshots},
                    {"problems", rep.problems}});
    } else {
        for (const auto &p : rep.problems)
            std::fprintf(stderr, "berth: %s\n", p.c_str());
        say(std::string(ok ? "ok: " : "PROBLEMS: ") + std::to_string(rep.chunks) + " chunks (" +
            str::human_bytes(rep.bytes) + ") re-hashed, " + std::to_string(rep.trees) + " trees, " +
            std::to_string(rep.snapshots) + " snapshots");
    }
    if (!ok) ctx.exit_code = 3;
}

} // namespace

void add_save(CLI::App &app, Context &ctx) {
    auto repo_opt = [](CLI::App *c) {
        c->add_option("--repo", repo_flag,
                      "repository: a directory, or ssh://[user@]host[:port]/path (default: config "
                      "`repo`, else $XDG_DATA_HOME/berth/repo)");
    };
    auto *s = command(app, "save");
    static std::string what;
    static std::vector<std::string> paths;
    s->add_option("NAME|DIR", what, "an instance name, or a directory (contains a /)")->required();
    s->add_option("PATH", paths, "paths on the instance (default /notebooks /storage/cfg)");
    repo_opt(s);
    s->add_flag("--via-laptop", via_laptop,
                "pass the bytes through this computer even where the machine may save directly");
    s->callback([&ctx] { cmd_save(ctx, what, paths); });

    auto *r = command(app, "restore");
    static std::string ref, dest;
    r->add_option("SNAPSHOT", ref, "snapshot id, a unique prefix, or latest")->required();
    r->add_option("TARGET", dest, "NAME (back where it was saved from), NAME:/path, or a directory")
        ->required();
    repo_opt(r);
    r->add_flag("--via-laptop", via_laptop,
                "pass the bytes through this computer even where the machine may read directly");
    r->callback([&ctx] { cmd_restore(ctx, ref, dest); });

    auto *l = command(app, "snapshots");
    repo_opt(l);
    l->callback([&ctx] { cmd_snapshots(ctx); });

    auto *d = command(app, "diff");
    static std::string a, b;
    d->add_option("A", a)->required();
    d->add_option("B", b)->required();
    repo_opt(d);
    d->callback([&ctx] { cmd_diff(ctx, a, b); });

    auto *v = command(app, "verify");
    repo_opt(v);
    v->callback([&ctx] { cmd_verify(ctx); });

    auto *f = command(app, "forget");
    static std::string fref;
    f->add_option("SNAPSHOT", fref)->required();
    repo_opt(f);
    f->callback([&ctx] {
        auto repo = open_repo(repo_spec(ctx), false);
        must(repo->lock(true));
        std::string ref = fref == "latest" ? must(repo->find_snapshot(fref)).id : fref;
        auto id = must(repo->forget(ref)); // damaged snapshots too: by the file's own name
        if (ctx.json)
            print_json({{"schema", "berth.forget/1"}, {"snapshot", id}});
        else
            say("forgot snapshot " + id + " (run `berth prune` to free its data)");
    });

    // The far end of an ssh:// repository: berth runs this on the host over ssh. Nothing but
    // the protocol goes to stdout.
    auto *rp = command(app, "repo");
    rp->require_subcommand(1);
    auto *sv = subcommand(*rp, "repo", "serve");
    static std::string serve_path;
    static bool append_only = false;
    sv->add_option("PATH", serve_path, "the repository directory on this host")->required();
    sv->add_flag("--append-only", append_only,
                 "add snapshots and read them; never forget, prune or replace anything");
    sv->callback([&ctx] {
        auto loc = must(store::parse_repo_location(serve_path));
        if (loc.kind != store::RepoLocation::local)
            throw Abort(Error{"repo serve takes a directory on this host", "", 2});
        ctx.exit_code = store::serve_repository(0, 1, loc.dir, append_only);
    });

    auto *am = subcommand(*rp, "repo", "allow-machines");
    static std::string allow_repo, allow_profile, authorized_keys = ".ssh/authorized_keys";
    am->add_option("--repo", allow_repo, "the ssh:// repository (default: config `repo`)");
    am->add_option("--profile", allow_profile,
                   "s3: the AWS profile whose credentials machines get (default berth-machines)");
    am->add_option("--authorized-keys", authorized_keys,
                   "the host's authorized_keys file (relative: to the login's home)")
        ->capture_default_str();
    am->callback([&ctx] {
        auto spec = allow_repo.empty() ? ctx.config.str("repo") : allow_repo;
        auto loc = must(store::parse_repo_location(spec));
        auto said = must(allow_machines(loc, authorized_keys, allow_profile));
        if (ctx.json)
            print_json({{"schema", "berth.allow-machines/1"}, {"repo", loc.text}});
        else
            say(said);
    });

    auto *in = subcommand(*rp, "repo", "init");
    static std::string init_repo, init_key_file;
    static bool no_encryption = false;
    in->add_option("--repo", init_repo, "where (default: config `repo`, else the default)");
    in->add_option("--key-file", init_key_file,
                   "keep the key in this file (default, with no passphrase given: "
                   "$XDG_CONFIG_HOME/berth/repo-keys/ID.json)");
    in->add_flag("--no-encryption", no_encryption,
                 "store snapshots unencrypted (only where the storage is as trusted as this disk)");
    in->callback([&ctx] {
        if (!init_repo.empty()) repo_flag = init_repo;
        auto loc = must(store::parse_repo_location(repo_spec(ctx)));
        auto backend = must(open_backend(loc));
        if (must(backend->get("config.json")))
            throw Abort(Error{"there is a repository at " + loc.text + " already",
                              "use it as it is; `berth repo info` describes it", 2});
        store::KeyOptions keys = key_options(init_key_file.empty());
        keys.encrypt = !no_encryption;
        keys.key_file = init_key_file;
        std::string made;
        keys.created_key = &made;
        auto repo = must(store::Repository::open(std::move(backend), true, keys));
        if (ctx.json) {
            print_json({{"schema", "berth.repo-init/1"},
                        {"repo", loc.text},
                        {"id", repo->id()},
                        {"encrypted", repo->encrypted()},
                        {"key", made}});
            return;
        }
        say("made repository " + repo->id() + " at " + loc.text +
            (repo->encrypted() ? made == "passphrase"
                                     ? ", encrypted; its key is sealed by your passphrase"
                                     : ", encrypted; its key is in " + made +
                                           ": keep a copy elsewhere, or add a passphrase with "
                                           "`berth repo key add`"
                               : ", not encrypted"));
    });

    auto *inf = subcommand(*rp, "repo", "info");
    repo_opt(inf);
    inf->callback([&ctx] {
        auto repo = open_repo(repo_spec(ctx), false);
        auto keys = repo->encrypted() ? must(repo->key_ids()) : std::vector<std::string>{};
        auto scan = repo->scan_snapshots();
        std::uint64_t stored = 0;
        for (const auto &f : must(repo->backend().list("data")))
            stored += f.size;
        auto kf = store::default_key_file(repo->id());
        bool has_kf = std::filesystem::exists(kf);
        if (ctx.json) {
            print_json({{"schema", "berth.repo-info/1"},
                        {"repo", repo->location()},
                        {"id", repo->id()},
                        {"format", repo->format_version()},
                        {"encryption", repo->encrypted() ? "aes-256-gcm" : "none"},
                        {"chunk_names", repo->encrypted() ? "hmac-sha256" : "sha256"},
                        {"passphrase_keys", keys},
                        {"key_file", has_kf ? kf.string() : ""},
                        {"opened_with", repo->opened_with()},
                        {"append_only", repo->backend().append_only()},
                        {"snapshots", scan.good.size()},
                        {"damaged_snapshots", scan.damaged.size()},
                        {"chunks", repo->chunk_count()},
                        {"stored_bytes", stored}});
            return;
        }
        say("repository " + repo->id() + " at " + repo->location());
        say("  format      " + std::to_string(repo->format_version()) +
            (repo->encrypted() ? ", encrypted (AES-256-GCM, chunk names HMAC-SHA256)"
                               : ", NOT encrypted"));
        if (repo->encrypted()) {
            say("  keys        " + std::to_string(keys.size()) + " passphrase(s)" +
                (has_kf ? ", key file " + kf.string() : std::string()));
            say("  opened with " + repo->opened_with());
        }
        say("  snapshots   " + std::to_string(scan.good.size()) +
            (scan.damaged.empty() ? ""
                                  : " (+" + std::to_string(scan.damaged.size()) + " damaged)"));
        say("  stored      " + str::human_bytes(stored) + " in " +
            std::to_string(repo->chunk_count()) + " chunks");
    });

    auto *ky = subcommand(*rp, "repo", "key");
    ky->require_subcommand(1);
    auto *ka = ky->add_subcommand("add", "add a passphrase that opens the repository");
    auto *kp = ky->add_subcommand("passwd", "change the passphrase that opened the repository");
    auto *kl = ky->add_subcommand("list", "the repository's passphrase keys");
    for (auto *c : {ka, kp, kl})
        repo_opt(c);
    auto new_passphrase = [] {
        auto p = must(repo_passphrase_new());
        return p;
    };
    ka->callback([&ctx, new_passphrase] {
        auto repo = open_repo(repo_spec(ctx), false);
        auto p = new_passphrase();
        auto name = must(repo->add_passphrase(p));
        if (ctx.json)
            print_json({{"schema", "berth.repo-key/1"}, {"added", name}});
        else
            say("added key " + name + ": the new passphrase opens " + repo->location());
    });
    kp->callback([&ctx, new_passphrase] {
        auto repo = open_repo(repo_spec(ctx), false);
        std::string old = repo->opened_with();
        if (old.rfind("keys/", 0) != 0)
            throw Abort(
                Error{"this repository was opened with a key file (" + old + "), not a passphrase",
                      "`berth repo key add` adds a passphrase", 2});
        auto p = new_passphrase();
        auto name = must(repo->add_passphrase(p));
        must(repo->remove_key(old));
        if (ctx.json)
            print_json({{"schema", "berth.repo-key/1"}, {"added", name}, {"removed", old}});
        else
            say("changed the passphrase: " + old + " replaced by " + name);
    });
    kl->callback([&ctx] {
        auto repo = open_repo(repo_spec(ctx), false);
        auto keys = must(repo->key_ids());
        if (ctx.json) {
            print_json({{"schema", "berth.repo-keys/1"}, {"keys", keys}});
            return;
        }
        for (const auto &k : keys)
            say(k + (k == repo->opened_with() ? "  (opened this time)" : ""));
    });

    auto *p = command(app, "prune");
    repo_opt(p);
    p->callback([&ctx] {
        auto repo = open_repo(repo_spec(ctx), false);
        must(repo->lock(true));
        auto rep = must(repo->prune());
        if (ctx.json)
            print_json({{"schema", "berth.prune/1"},
                        {"packs_removed", rep.packs_removed},
                        {"bytes_freed", rep.bytes_freed},
                        {"orphan_packs", rep.orphan_packs},
                        {"unused_bytes_kept", rep.unused_bytes_kept}});
        else
            say("pruned " + std::to_string(rep.packs_removed + rep.orphan_packs) +
                " pack(s), freed " + str::human_bytes(rep.bytes_freed) + "; " +
                str::human_bytes(rep.unused_bytes_kept) + " unused inside packs still in use");
    });
}

} // namespace berth::cli
