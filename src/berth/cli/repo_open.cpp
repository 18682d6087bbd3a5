// Opening the repository --repo names: a directory here, or one on an SSH host, where berth's
// own static binary serves it (`berth repo serve`, uploaded once per version to
// ~/.cache/berth/bin/ on the host; the host needs nothing but sshd and a shell).
#include "cli/repo_open.hpp"

#include "agent/hooks.hpp"
#include "store/location.hpp"
#include "store/remote_repo.hpp"
#include "store/repository.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <cstdlib>

namespace berth::cli {

namespace {

// ssh with what berth needs of it: never a prompt (the pipe is the protocol), keepalives, and
// the user's own ~/.ssh/config for everything else (keys, aliases, jump hosts).
// BERTH_SSH_COMMAND replaces "ssh" (words split on spaces), as GIT_SSH_COMMAND does for git:
// `BERTH_SSH_COMMAND="ssh -F ~/work/ssh_config"`.
std::vector<std::string> ssh_argv(const store::RepoLocation &loc) {
    std::vector<std::string> a;
    if (const char *c = std::getenv("BERTH_SSH_COMMAND"); c && *c)
        for (const auto &w : str::split(c, ' '))
            if (!w.empty()) a.push_back(w);
    if (a.empty()) a.push_back("ssh");
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

// Puts this berth's static binary on the host unless that exact build is there; returns its
// path on the host (relative to the login's home).
Result<std::string> ensure_remote_binary(const store::RepoLocation &loc) {
    auto bin = find_static_binary();
    if (!bin) return tl::unexpected(bin.error());
    auto hash = sha256_file(*bin);
    if (!hash) return tl::unexpected(hash.error());
    std::string remote = ".cache/berth/bin/berth-" + hash->substr(0, 16);
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
    auto bin = ensure_remote_binary(loc);
    if (!bin) return tl::unexpected(bin.error());
    auto argv = ssh_argv(loc);
    argv.push_back(*bin + " repo serve " + str::shell_quote(loc.path));
    auto pipe = proc::spawn_pipe(argv);
    if (!pipe) return tl::unexpected(pipe.error());
    auto r = store::RemoteRepository::connect(*pipe, loc.text, create);
    if (!r) return tl::unexpected(r.error());
    return std::unique_ptr<store::RepoStore>(std::move(*r));
}

} // namespace berth::cli
