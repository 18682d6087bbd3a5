// Opening the repository --repo names: a directory here, or one on an SSH host, where berth's
// own static binary serves it (`berth repo serve`, uploaded once per version to
// ~/.cache/berth/bin/ on the host; the host needs nothing but sshd and a shell).
#include "cli/repo_open.hpp"

#include "agent/hooks.hpp"
#include "core/json_read.hpp"
#include "core/paths.hpp"
#include "store/location.hpp"
#include "store/remote_repo.hpp"
#include "store/repository.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <unistd.h>

namespace berth::cli {

namespace {

// ssh with what berth needs of it: never a prompt (the pipe is the protocol), keepalives, and
// the user's own ~/.ssh/config for everything else (keys, aliases, jump hosts).
// BERTH_SSH_COMMAND replaces "ssh" (words split on spaces), as GIT_SSH_COMMAND does for git:
// `BERTH_SSH_COMMAND="ssh -F ~/work/ssh_config"`.
std::vector<std::string> ssh_prefix() {
    std::vector<std::string> a;
    if (const char *c = std::getenv("BERTH_SSH_COMMAND"); c && *c)
        for (const auto &w : str::split(c, ' '))
            if (!w.empty()) a.push_back(w);
    if (a.empty()) a.push_back("ssh");
    return a;
}

std::vector<std::string> ssh_argv(const store::RepoLocation &loc) {
    auto a = ssh_prefix();
    a.insert(a.end(), {"-T", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=15", "-o",
                       "ServerAliveCountMax=4"});
    if (loc.port) {
        a.push_back("-p");
        a.push_back(std::to_string(loc.port));
    }
    if (!loc.user.empty()) {
        a.push_back("-l");
        a.push_back(loc.user);
    }
    a.push_back("--");
    a.push_back(loc.host);
    return a;
}

// Where this build lives on a host (relative to the login's home): named by its hash.
Result<std::string> this_build_on_host() {
    static std::string cached; // one hash of the 10 MB build per process, however many opens
    if (!cached.empty()) return cached;
    auto bin = find_static_binary();
    if (!bin) return tl::unexpected(bin.error());
    auto hash = sha256_file(*bin);
    if (!hash) return tl::unexpected(hash.error());
    cached = ".cache/berth/bin/berth-" + hash->substr(0, 16);
    return cached;
}

// Puts this berth's static binary on the host unless that exact build is there; returns its
// path on the host (relative to the login's home).
Result<std::string> ensure_remote_binary(const store::RepoLocation &loc) {
    auto bin = find_static_binary();
    if (!bin) return tl::unexpected(bin.error());
    auto where = this_build_on_host();
    if (!where) return tl::unexpected(where.error());
    std::string remote = *where;
    auto argv = ssh_argv(loc);
    argv.push_back("test -x " + remote);
    auto probe =
        proc::run(argv, {.input = std::string(), .env = {}, .timeout = std::chrono::seconds(60)});
    if (!probe) return tl::unexpected(probe.error());
    if (probe->status == 0) return remote;
    if (probe->status == 255)
        return fail("cannot reach " + loc.text + ": " + str::trim(probe->err),
                    "check `ssh " + loc.host + "` works without a prompt (keys, ~/.ssh/config)");
    auto data = fs::read_file(*bin);
    if (!data) return tl::unexpected(data.error());
    argv = ssh_argv(loc);
    // Written aside, then renamed: a cut upload never leaves a half binary under the name.
    argv.push_back("umask 077 && mkdir -p .cache/berth/bin && cat > " + remote + ".part && " +
                   "chmod 700 " + remote + ".part && mv -f " + remote + ".part " + remote);
    auto up = proc::run(argv, {.input = *data, .env = {}, .timeout = std::chrono::seconds(600)});
    if (!up) return tl::unexpected(up.error());
    if (up->status != 0)
        return fail("could not put berth on " + loc.host + ": " + str::trim(up->err),
                    "the host needs a writable home directory");
    return remote;
}

} // namespace

std::unique_ptr<store::RepoStore> open_repo(const std::string &spec, bool create) {
    auto loc =
        must(store::parse_repo_location(spec.empty() ? store::default_repo().string() : spec));
    return must(try_open_repo(loc, create));
}

Result<std::unique_ptr<store::RepoStore>> try_open_repo(const store::RepoLocation &loc,
                                                        bool create) {
    if (loc.kind == store::RepoLocation::local) {
        auto r = store::Repository::open(loc.dir, create);
        if (!r) return tl::unexpected(r.error());
        return std::unique_ptr<store::RepoStore>(new store::Repository(std::move(*r)));
    }
    if (loc.kind == store::RepoLocation::s3)
        return fail("repository '" + loc.text + "': S3 repositories are not in this berth yet",
                    "use a directory or ssh://host/path for now", 2);
    // One connection in the common case: serve if this build is on the host, else exit 97,
    // then upload it and connect again.
    auto bin = this_build_on_host();
    if (!bin) return tl::unexpected(bin.error());
    for (int attempt = 0;; ++attempt) {
        auto argv = ssh_argv(loc);
        argv.push_back("B=" + *bin + "; if [ -x \"$B\" ]; then exec \"$B\" repo serve " +
                       str::shell_quote(loc.path) + "; else exit 97; fi");
        auto pipe = proc::spawn_pipe(argv);
        if (!pipe) return tl::unexpected(pipe.error());
        int status = 0;
        auto r = store::RemoteRepository::connect(*pipe, loc.text, create, &status);
        if (r) return std::unique_ptr<store::RepoStore>(std::move(*r));
        if (status == 255)
            return fail("cannot reach " + loc.text + ": ssh failed (see its message above)",
                        "check `ssh " + loc.host +
                            "` works without a prompt (keys, ~/.ssh/config)");
        if (status != 97 || attempt > 0) return tl::unexpected(r.error());
        auto up = ensure_remote_binary(loc);
        if (!up) return tl::unexpected(up.error());
    }
}

namespace {

std::filesystem::path access_base(const store::RepoLocation &loc) {
    return paths::data_home() / "berth" / "machine-keys" / sha256_hex(loc.text).substr(0, 16);
}

std::string expand_home(const std::string &p) {
    if (p.rfind("~/", 0) != 0) return p;
    const passwd *pw = ::getpwuid(::getuid()); // ssh's own idea of ~, not $HOME
    return std::string(pw ? pw->pw_dir : "") + p.substr(1);
}

} // namespace

Result<std::string> allow_machines(const store::RepoLocation &loc,
                                   const std::string &authorized_keys) {
    if (loc.kind != store::RepoLocation::ssh)
        return fail("machines save directly only to ssh:// repositories", "", 2);
    auto repo = try_open_repo(loc, true); // made now if new; berth is on the host after this
    if (!repo) return tl::unexpected(repo.error());
    auto bin = this_build_on_host();
    if (!bin) return tl::unexpected(bin.error());
    auto base = access_base(loc);
    BERTH_TRY(fs::make_dirs(base.parent_path(), 0700));
    if (!std::filesystem::exists(base)) {
        auto k = proc::run({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "berth-machines",
                            "-f", base.string()});
        if (!k || k->status != 0) return fail("ssh-keygen failed", "install openssh-client");
    }
    auto pub = fs::read_file(base.string() + ".pub");
    if (!pub) return tl::unexpected(pub.error());
    // Where the machine connects, and the host key this laptop already trusts for it.
    auto g = ssh_prefix();
    g.push_back("-G");
    if (loc.port) g.insert(g.end(), {"-p", std::to_string(loc.port)});
    if (!loc.user.empty()) g.insert(g.end(), {"-l", loc.user});
    g.insert(g.end(), {"--", loc.host});
    auto cfg = proc::run(g);
    if (!cfg || cfg->status != 0) return fail("`ssh -G " + loc.host + "` failed");
    std::string hostname = loc.host, user, port = "22";
    std::vector<std::string> known_files;
    for (const auto &line : str::split(cfg->out, '\n')) {
        auto w = str::split(str::trim(line), ' ');
        if (w.size() < 2) continue;
        if (w[0] == "hostname") hostname = w[1];
        if (w[0] == "port") port = w[1];
        if (w[0] == "user") user = w[1];
        if (w[0] == "userknownhostsfile")
            for (std::size_t i = 1; i < w.size(); ++i)
                known_files.push_back(expand_home(w[i]));
    }
    std::string name = port == "22" ? hostname : "[" + hostname + "]:" + port, known;
    for (const auto &f : known_files) {
        auto k = proc::run({"ssh-keygen", "-F", name, "-f", f});
        if (!k || k->status != 0) continue;
        for (const auto &line : str::split(k->out, '\n'))
            if (!line.empty() && line[0] != '#') known += line + "\n";
    }
    if (known.empty())
        return fail("this laptop has no known host key for " + name,
                    "`ssh " + loc.host + " true` once, and check the key it shows");
    // The host lets this key run one command: an append-only serve of this repository.
    std::string line = "command=\"" + *bin + " repo serve --append-only " +
                       str::shell_quote(loc.path) + "\",restrict " + str::trim(*pub);
    auto argv = ssh_argv(loc);
    argv.push_back("umask 077; f=" + str::shell_quote(authorized_keys) +
                   "; mkdir -p \"$(dirname \"$f\")\"; touch \"$f\"; IFS= read -r line; "
                   "grep -qxF -- \"$line\" \"$f\" || printf '%s\\n' \"$line\" >> \"$f\"");
    auto add =
        proc::run(argv, {.input = line + "\n", .env = {}, .timeout = std::chrono::seconds(60)});
    if (!add || add->status != 0)
        return fail("could not add the machines' key to " + authorized_keys + " on " + loc.host +
                    (add ? ": " + str::trim(add->err) : ""));
    nlohmann::json j{{"location", loc.text},
                     {"host", hostname},
                     {"port", std::stoi(port)},
                     {"user", user},
                     {"known_hosts", known}};
    BERTH_TRY(fs::write_file_atomic(base.string() + ".json", j.dump(2) + "\n", 0600));
    return "machines may now save to " + loc.text + " themselves (key " + base.string() +
           ".pub, restricted on " + loc.host + " to an append-only serve of " + loc.path + ")";
}

std::optional<DirectSave> machine_access(const store::RepoLocation &loc) {
    if (loc.kind != store::RepoLocation::ssh) return std::nullopt;
    auto base = access_base(loc);
    auto text = fs::read_file(base.string() + ".json");
    auto key = fs::read_file(base);
    if (!text || !key) return std::nullopt;
    auto j = nlohmann::json::parse(*text, nullptr, false);
    if (!j.is_object() || jsonr::text(j, "location", "", 4096) != loc.text) return std::nullopt;
    DirectSave d;
    d.location = loc.text;
    d.host = jsonr::text(j, "host", "", 255);
    d.user = jsonr::text(j, "user", "", 64);
    d.port = static_cast<int>(jsonr::integer(j, "port"));
    d.known_hosts = jsonr::text(j, "known_hosts", "", 65536);
    d.key = *key;
    return d;
}

} // namespace berth::cli
