// Opening the repository --repo names: a directory here, or one on an SSH host, where berth's
// own static binary serves it (`berth repo serve`, uploaded once per version to
// ~/.cache/berth/bin/ on the host; the host needs nothing but sshd and a shell).
#include "cli/repo_open.hpp"

#include "agent/hooks.hpp"
#include "core/json_read.hpp"
#include "core/paths.hpp"
#include "store/location.hpp"
#include "store/remote_backend.hpp"
#include "store/repository.hpp"
#include "store/s3_backend.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <termios.h>
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

namespace {

// A line from the terminal with echo off; nullopt when there is no terminal.
std::optional<std::string> ask_tty(const std::string &prompt) {
    int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return std::nullopt;
    termios old{};
    bool restore = ::tcgetattr(fd, &old) == 0;
    if (restore) {
        termios quiet = old;
        quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
        ::tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    (void)!::write(fd, prompt.data(), prompt.size());
    std::string line;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n')
        line += c;
    if (restore) ::tcsetattr(fd, TCSAFLUSH, &old);
    (void)!::write(fd, "\n", 1);
    ::close(fd);
    return line;
}

std::string strip_newline(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r'))
        s.pop_back();
    return s;
}

} // namespace

namespace {

Result<std::optional<std::string>> passphrase_from(const std::string &var, bool confirm,
                                                   bool may_ask) {
    if (const char *p = std::getenv(var.c_str()); p && *p) return std::optional<std::string>(p);
    if (const char *f = std::getenv((var + "_FILE").c_str()); f && *f) {
        auto text = fs::read_file(f);
        if (!text)
            return fail(var + "_FILE: " + text.error().what,
                        "point it at a readable file holding the passphrase");
        auto p = strip_newline(*text);
        if (p.empty()) return fail(var + "_FILE " + std::string(f) + " is empty");
        return std::optional<std::string>(p);
    }
    if (const char *c = std::getenv((var + "_COMMAND").c_str()); c && *c) {
        auto out =
            proc::run({"sh", "-c", c},
                      {.input = std::string(), .env = {}, .timeout = std::chrono::minutes(2)});
        if (!out || out->status != 0)
            return fail(var + "_COMMAND failed" +
                            (out ? " (exit " + std::to_string(out->status) + ")" : std::string()),
                        "check the command prints the passphrase");
        auto p = strip_newline(out->out);
        if (p.empty()) return fail(var + "_COMMAND printed nothing");
        return std::optional<std::string>(p);
    }
    if (!may_ask) return std::optional<std::string>();
    auto p = ask_tty(confirm ? "New repository passphrase: " : "Repository passphrase: ");
    if (!p) return std::optional<std::string>();
    if (p->empty()) return fail("an empty passphrase", "type one, or use a key file", 2);
    if (confirm) {
        auto again = ask_tty("Again: ");
        if (!again || *again != *p) return fail("the passphrases differ", "nothing was made", 2);
    }
    return p;
}

} // namespace

Result<std::optional<std::string>> repo_passphrase(bool confirm, bool may_ask) {
    return passphrase_from("BERTH_REPO_PASSWORD", confirm, may_ask);
}

Result<std::string> repo_passphrase_new() {
    auto p = passphrase_from("BERTH_REPO_NEW_PASSWORD", true, true);
    if (!p) return tl::unexpected(p.error());
    if (!*p)
        return fail("no new passphrase", "run on a terminal, or set BERTH_REPO_NEW_PASSWORD_FILE",
                    2);
    return **p;
}

store::KeyOptions key_options(bool ask_new) {
    store::KeyOptions k;
    k.passphrase = [ask_new](bool confirm) {
        return repo_passphrase(confirm, !confirm || ask_new);
    };
    return k;
}

std::unique_ptr<store::RepoStore> open_repo(const std::string &spec, bool create) {
    auto loc =
        must(store::parse_repo_location(spec.empty() ? store::default_repo().string() : spec));
    return must(try_open_repo(loc, create));
}

Result<std::unique_ptr<store::Backend>> open_backend(const store::RepoLocation &loc);

Result<std::unique_ptr<store::RepoStore>> try_open_repo(const store::RepoLocation &loc, bool create,
                                                        store::KeyOptions keys) {
    auto backend = open_backend(loc);
    if (!backend) return tl::unexpected(backend.error());
    std::string made;
    if (!keys.created_key) keys.created_key = &made;
    auto r = store::Repository::open(std::move(*backend), create, keys);
    if (r && !made.empty() && made != "passphrase")
        std::fprintf(stderr,
                     "berth: made an encrypted repository at %s; its key is in %s.\n"
                     "       Keep a copy of that file elsewhere, or add a passphrase with "
                     "`berth repo key add --repo %s`: without one of them the snapshots cannot "
                     "be read.\n",
                     loc.text.c_str(), made.c_str(), loc.text.c_str());
    return r;
}

Result<std::unique_ptr<store::RepoStore>> try_open_repo(const store::RepoLocation &loc,
                                                        bool create) {
    return try_open_repo(loc, create, key_options(false));
}

Result<std::unique_ptr<store::Backend>> open_backend(const store::RepoLocation &loc) {
    if (loc.kind == store::RepoLocation::local) return store::local_backend(loc.dir);
    if (loc.kind == store::RepoLocation::s3) return store::s3_backend(loc);
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
        auto r = store::connect_remote_backend(*pipe, loc.text, &status);
        if (r) return r;
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
                                   const std::string &authorized_keys, const std::string &profile) {
    if (loc.kind == store::RepoLocation::s3) {
        // No key to make: the machines get the credentials of an AWS profile the user made for
        // them (a key that may read and write but not delete, by the bucket's policy).
        std::string p = profile.empty() ? "berth-machines" : profile;
        auto c = store::s3_credentials(p);
        if (!c)
            return fail("no AWS profile '" + p + "' for machines: " + c.error().what,
                        "add one to ~/.aws/credentials with a key that cannot delete, or pass "
                        "--profile NAME",
                        2);
        auto repo = try_open_repo(loc, true);
        if (!repo) return tl::unexpected(repo.error());
        auto base = access_base(loc);
        BERTH_TRY(fs::make_dirs(base.parent_path(), 0700));
        nlohmann::json j{
            {"location", loc.text}, {"kind", "s3"}, {"profile", p}, {"repo_id", (*repo)->id()}};
        BERTH_TRY(fs::write_file_atomic(base.string() + ".json", j.dump(2) + "\n", 0600));
        return "machines may now save to " + loc.text + " themselves, with the credentials of " +
               "AWS profile '" + p + "' (give that key no delete rights)";
    }
    if (loc.kind != store::RepoLocation::ssh)
        return fail("machines save directly only to ssh:// and s3: repositories", "", 2);
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
    nlohmann::json j{{"location", loc.text}, {"repo_id", (*repo)->id()},
                     {"host", hostname},     {"port", std::stoi(port)},
                     {"user", user},         {"known_hosts", known}};
    BERTH_TRY(fs::write_file_atomic(base.string() + ".json", j.dump(2) + "\n", 0600));
    return "machines may now save to " + loc.text + " themselves (key " + base.string() +
           ".pub, restricted on " + loc.host + " to an append-only serve of " + loc.path + ")";
}

void fill_direct_key(DirectSave &d, const std::string &spec, store::RepoStore *open) {
    if (!d.s3_profile.empty()) { // read at each use: a rotated key is picked up
        auto c = must(store::s3_credentials(d.s3_profile));
        d.s3 =
            nlohmann::json{
                {"key", c.key}, {"secret", c.secret}, {"token", c.token}, {"region", c.region}}
                .dump();
    }
    const char *env_kf = std::getenv("BERTH_REPO_KEY_FILE");
    auto kf =
        env_kf && *env_kf ? std::filesystem::path(env_kf) : store::default_key_file(d.repo_id);
    auto text = d.repo_id.empty() ? Result<std::string>(fail("no id")) : fs::read_file(kf);
    auto key = text ? store::MasterKey::from_json(*text) : Result<store::MasterKey>(fail("none"));
    if (key) {
        d.repo_key = key->to_json();
        return;
    }
    if (open) {
        if (open->master_key()) d.repo_key = open->master_key()->to_json();
        return;
    }
    auto repo = open_repo(spec, false);
    if (repo->master_key()) d.repo_key = repo->master_key()->to_json();
}

std::optional<DirectSave> machine_access(const store::RepoLocation &loc) {
    if (loc.kind == store::RepoLocation::s3) {
        auto text = fs::read_file(access_base(loc).string() + ".json");
        if (!text) return std::nullopt;
        auto j = nlohmann::json::parse(*text, nullptr, false);
        if (!j.is_object() || jsonr::text(j, "location", "", 4096) != loc.text ||
            jsonr::text(j, "kind", "", 8) != "s3")
            return std::nullopt;
        DirectSave d;
        d.location = loc.text;
        d.s3_profile = jsonr::text(j, "profile", "", 128);
        d.repo_id = jsonr::text(j, "repo_id", "", 64);
        if (d.s3_profile.empty()) return std::nullopt;
        return d;
    }
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
    d.repo_id = jsonr::text(j, "repo_id", "", 64);
    d.key = *key;
    return d;
}

} // namespace berth::cli
