#include "agent/keys.hpp"

#include "util/fs.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <cerrno>
#include <map>
#include <sys/stat.h>
#include <unistd.h>

namespace berth {

namespace {

bool is_public_name(const std::string &n) {
    return n.size() > 4 && n.ends_with(".pub");
}

Result<bool> chmod_if(const stdfs::path &p, mode_t want) {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0 || S_ISLNK(st.st_mode)) return false;
    if ((st.st_mode & 07777) == want) return false;
    if (::chmod(p.c_str(), want) != 0) return fail_errno(p.string(), errno);
    return true;
}

// "ssh-ed25519 AAAA... comment" -> "ssh-ed25519 AAAA..."
std::string key_body(std::string_view pub) {
    auto parts = str::split(str::trim(pub), ' ');
    if (parts.size() < 2) return str::trim(pub);
    return parts[0] + " " + parts[1];
}

Result<KeyInfo> describe_key(const stdfs::path &pub_or_priv) {
    auto out = proc::run({"ssh-keygen", "-l", "-f", pub_or_priv.string()});
    if (!out) return tl::unexpected(out.error());
    if (out->status != 0)
        return fail("cannot read key " + pub_or_priv.string() + ": " + str::trim(out->err));
    // "256 SHA256:abc comment (ED25519)"
    auto line = str::trim(out->out);
    KeyInfo k;
    auto parts = str::split(line, ' ');
    if (parts.size() >= 2) k.fingerprint = parts[1];
    auto lp = line.rfind('('), rp = line.rfind(')');
    if (lp != std::string::npos && rp > lp) k.type = line.substr(lp + 1, rp - lp - 1);
    if (parts.size() > 3) {
        std::vector<std::string> c(parts.begin() + 2, parts.end() - 1);
        k.comment = str::join(c, " ");
    }
    return k;
}

} // namespace

Result<std::size_t> fix_ssh_permissions(const stdfs::path &dir) {
    std::size_t changed = 0;
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return changed;
    auto r = chmod_if(dir, 0700);
    if (!r) return tl::unexpected(r.error());
    changed += *r;
    std::error_code ec;
    for (const auto &e : stdfs::directory_iterator(dir, ec)) {
        std::string n = e.path().filename();
        if (!e.is_regular_file(ec) || e.is_symlink(ec)) continue;
        mode_t want = 0600;
        if (is_public_name(n) || n == "known_hosts" || n == "known_hosts.old")
            want = 0644;
        else if (n == "authorized_keys" || n == "config")
            want = 0600;
        else {
            auto text = fs::read_file(e.path());
            if (!text || classify_key_text(*text) != KeyText::private_key) continue;
        }
        auto c = chmod_if(e.path(), want);
        if (!c) return tl::unexpected(c.error());
        changed += *c;
    }
    return changed;
}

KeyText classify_key_text(std::string_view text) {
    if (str::contains(text, "PRIVATE KEY-----") || str::contains(text, "PuTTY-User-Key-File"))
        return KeyText::private_key;
    auto t = str::trim(text);
    static const char *prefixes[] = {
        "ssh-ed25519 ",  "ssh-rsa ", "ssh-dss ", "ecdsa-sha2-", "sk-ssh-ed25519@openssh.com ",
        "sk-ecdsa-sha2-"};
    for (const char *p : prefixes)
        if (t.rfind(p, 0) == 0) return KeyText::public_key;
    if (str::contains(text, "BEGIN SSH2 PUBLIC KEY")) return KeyText::public_key;
    return KeyText::unknown;
}

Result<KeyInfo> keys_generate(const stdfs::path &dir, const std::string &name,
                              const std::string &comment) {
    if (name.empty() || name.find('/') != std::string::npos || is_public_name(name))
        return fail("bad key name '" + name + "'", "use a plain file name like id_ed25519", 2);
    BERTH_TRY(fs::make_dirs(dir, 0700));
    auto priv = dir / name;
    auto pub = dir / (name + ".pub");
    if (stdfs::exists(priv) || stdfs::exists(pub))
        return fail(priv.string() + " already exists",
                    "keep it, or pass --name to create another key");
    auto out = proc::run(
        {"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", priv.string()});
    if (!out) return tl::unexpected(out.error());
    if (out->status != 0) return fail("ssh-keygen failed: " + str::trim(out->err));
    BERTH_TRY(fix_ssh_permissions(dir));
    auto info = describe_key(pub);
    if (!info) return info;
    info->name = name;
    info->has_private = true;
    auto text = fs::read_file(pub);
    if (text) info->public_key = str::trim(*text);
    return info;
}

namespace {

struct Incoming {
    stdfs::path src;
    std::string dest_name;
    std::string text;
    KeyText kind;
};

// Derives "type base64 comment" from a private key; nullopt if it has a passphrase.
std::optional<std::string> derive_public(const stdfs::path &priv) {
    auto out = proc::run({"ssh-keygen", "-y", "-P", "", "-f", priv.string()});
    if (!out || out->status != 0) return std::nullopt;
    return str::trim(out->out);
}

} // namespace

Result<ImportReport> keys_import(const stdfs::path &dir, const std::vector<std::string> &files) {
    if (files.empty()) return fail("no key files given", "name the files to import", 2);
    std::vector<Incoming> in;
    for (const auto &f : files) {
        auto text = fs::read_file(f);
        if (!text) return fail(text.error().what, "check the path", 1);
        Incoming i{f, stdfs::path(f).filename().string(), *text, classify_key_text(*text)};
        if (i.kind == KeyText::unknown)
            return fail(f + " is not an SSH key", "give an OpenSSH private key or a .pub file", 2);
        if (i.kind == KeyText::private_key && is_public_name(i.dest_name))
            return fail(f + " holds a PRIVATE key under a public key's name",
                        "never share it; import it as " +
                            i.dest_name.substr(0, i.dest_name.size() - 4) +
                            " and berth derives the .pub",
                        2);
        if (i.kind == KeyText::private_key && str::contains(i.text, "PuTTY-User-Key-File"))
            return fail(f + " is a PuTTY key", "convert it with `puttygen KEY -O private-openssh`",
                        2);
        if (i.kind == KeyText::public_key && !is_public_name(i.dest_name)) i.dest_name += ".pub";
        in.push_back(std::move(i));
    }
    // Check pairs and destinations before writing anything.
    std::map<std::string, const Incoming *> by_name;
    for (const auto &i : in) {
        if (by_name.count(i.dest_name))
            return fail("two files would both be imported as " + i.dest_name, "", 2);
        by_name[i.dest_name] = &i;
    }
    ImportReport rep;
    BERTH_TRY(fs::make_dirs(dir, 0700));
    std::vector<std::pair<const Incoming *, bool>> to_write; // (file, already identical)
    for (const auto &i : in) {
        auto dest = dir / i.dest_name;
        auto existing = fs::read_file(dest);
        bool same = existing && *existing == i.text;
        if (existing && !same)
            return fail(dest.string() + " already exists with a different key",
                        "move it away, or rename the file you import", 1);
        to_write.emplace_back(&i, same);
    }
    // A given .pub must belong to its private key.
    for (const auto &i : in) {
        if (i.kind != KeyText::private_key) continue;
        auto tmp = fs::temp_sibling(dir / i.dest_name, "check");
        BERTH_TRY(fs::write_file_atomic(tmp, i.text, 0600));
        auto derived = derive_public(tmp);
        ::unlink(tmp.c_str());
        auto pub_it = by_name.find(i.dest_name + ".pub");
        if (pub_it != by_name.end() && derived &&
            key_body(*derived) != key_body(pub_it->second->text))
            return fail(pub_it->second->src.string() + " is not the public half of " +
                            i.src.string(),
                        "import the matching pair", 2);
        if (pub_it == by_name.end() && !stdfs::exists(dir / (i.dest_name + ".pub"))) {
            if (derived) {
                rep.derived.push_back(i.dest_name + ".pub");
                BERTH_TRY(
                    fs::write_file_atomic(dir / (i.dest_name + ".pub"), *derived + "\n", 0644));
            } else {
                rep.warnings.push_back(i.dest_name + " has a passphrase: import its .pub too");
            }
        }
    }
    for (const auto &[i, same] : to_write) {
        if (same) {
            rep.unchanged.push_back(i->dest_name);
            continue;
        }
        mode_t mode = i->kind == KeyText::private_key ? 0600 : 0644;
        BERTH_TRY(fs::write_file_atomic(dir / i->dest_name, i->text, mode));
        rep.written.push_back(i->dest_name);
    }
    BERTH_TRY(fix_ssh_permissions(dir));
    return rep;
}

Result<std::vector<KeyInfo>> keys_list(const stdfs::path &dir) {
    std::vector<KeyInfo> keys;
    std::error_code ec;
    if (!stdfs::is_directory(dir, ec)) return keys;
    std::vector<std::string> names;
    for (const auto &e : stdfs::directory_iterator(dir, ec))
        names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    for (const auto &n : names) {
        if (!is_public_name(n)) continue;
        auto text = fs::read_file(dir / n);
        if (!text || classify_key_text(*text) != KeyText::public_key) continue;
        auto info = describe_key(dir / n);
        if (!info) continue;
        info->name = n.substr(0, n.size() - 4);
        info->public_key = str::trim(*text);
        info->has_private = stdfs::exists(dir / info->name);
        keys.push_back(*info);
    }
    return keys;
}

const char *cause_name(KeyTestCause c) {
    switch (c) {
    case KeyTestCause::ok:
        return "ok";
    case KeyTestCause::no_key_offered:
        return "no-key-offered";
    case KeyTestCause::key_not_registered:
        return "key-not-registered";
    case KeyTestCause::passphrase_needed:
        return "passphrase-needed";
    case KeyTestCause::host_key_changed:
        return "host-key-changed";
    case KeyTestCause::host_key_unknown:
        return "host-key-unknown";
    case KeyTestCause::network:
        return "network";
    case KeyTestCause::unknown:
        return "unknown";
    }
    return "?";
}

KeyTestResult diagnose_ssh(int status, std::string_view output, std::string_view verbose,
                           const std::string &host) {
    auto has = [&](std::string_view s) {
        return str::contains(output, s) || str::contains(verbose, s);
    };
    if (has("successfully authenticated") || has("Welcome to GitLab") ||
        has("authenticated via ssh key") || status == 0)
        return {KeyTestCause::ok, "authenticated to " + host};
    if (has("REMOTE HOST IDENTIFICATION HAS CHANGED"))
        return {KeyTestCause::host_key_changed,
                "the host key of " + host +
                    " changed since it was pinned (the host was rebuilt, or "
                    "someone is in between): if you trust the change, remove the old key with "
                    "`ssh-keygen -R " +
                    host + "`"};
    if (has("Host key verification failed") || has("No ED25519 host key is known") ||
        has("host key is known for"))
        return {KeyTestCause::host_key_unknown, "the host key of " + host +
                                                    " is not known: connect once with `ssh " +
                                                    host + "` and check its fingerprint"};
    for (const char *n :
         {"Could not resolve hostname", "Connection refused", "Connection timed out",
          "No route to host", "Network is unreachable", "Name or service not known",
          "Temporary failure in name resolution", "Connection reset"})
        if (has(n))
            return {KeyTestCause::network, "cannot reach " + host + ": " + std::string(n) +
                                               " (check the network, the host name and the port)"};
    if (has("Permission denied")) {
        if (has("Server accepts key") && (has("passphrase") || has("sign_and_send_pubkey")))
            return {KeyTestCause::passphrase_needed,
                    "the key needs its passphrase: load it with `ssh-add`"};
        if (has("Offering public key") || has("Offering ED25519") || has("Offering RSA"))
            return {KeyTestCause::key_not_registered,
                    "the server refused the offered key(s): add your .pub to the account (GitHub: "
                    "Settings > SSH and GPG keys > New SSH key; `berth keys list` prints it)"};
        return {KeyTestCause::no_key_offered,
                "no key was offered: create one with `berth keys generate` or import yours with "
                "`berth keys import`"};
    }
    if (status == 255 && has("Connection closed"))
        return {KeyTestCause::network, "the connection to " + host + " was closed before login"};
    auto first = str::trim(output.substr(0, output.find('\n')));
    return {KeyTestCause::unknown, "ssh to " + host + " failed (exit " + std::to_string(status) +
                                       (first.empty() ? "" : ": " + first) + ")"};
}

// GitHub's host keys as published in its documentation (SSH key fingerprints page).
static const char *k_github_known_hosts =
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    "github.com ecdsa-sha2-nistp256 "
    "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5"
    "N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg=\n"
    "github.com ssh-rsa "
    "AAAAB3NzaC1yc2EAAAADAQABAAABgQCj7ndNxQowgcQnjshcLrqPEiiphnt+"
    "VTTvDP6mHBL9j1aNUkY4Ue1gvwnGLVlOhGeYrnZaMgRK6+PKCUXaDbC7qtbW8gIkhL7aGCsOr/C56SJMy/"
    "BCZfxd1nWzAOxSDPgVsmerOBYfNqltV9/"
    "hWCqBywINIR+5dIg6JTJ72pcEpEjcYgXkE2YEFXV1JHnsKgbLWNlhScqb2UmyRkQyytRLtL+38TGxkxCflmO+"
    "5Z8CSSNY7GidjMIZ7Q4zMjA2n1nGrlTDkzwDCsw+"
    "wqFPGQA179cnfGWOWRVruj16z6XyvxvjJwbz0wQZ75XK5tKSb7FNyeIEs4TT4jk+S4dhPeAUC5y+"
    "bDYirYgM4GC7uEnztnZyaVWQ7B381AK4Qdrwt51ZqExKbQpTUNn+EjqoTwvqNj4kqx5QUCI0ThS/"
    "YkOxJCXmPUWZbhjpCg56i+2aB6CmK2JGhn57K5mj0MNdBXA4/WnwH6XoPWJzK5Nyu2zB3nAZp+S5hpQs+p1vN1/"
    "wsjk=\n";

Result<> seed_known_hosts(const stdfs::path &file) {
    auto existing = fs::read_file(file);
    std::string text = existing ? *existing : std::string();
    if (str::contains(text, "github.com ssh-ed25519")) return {};
    BERTH_TRY(fs::make_dirs(file.parent_path(), 0700));
    return fs::write_file_atomic(file, text + k_github_known_hosts, 0644);
}

Result<KeyTestResult> keys_test(const KeyTestOptions &opt) {
    std::string target = opt.host;
    std::string bare =
        target.substr(target.find('@') == std::string::npos ? 0 : target.find('@') + 1);
    if (target.find('@') == std::string::npos &&
        (bare == "github.com" || bare == "gitlab.com" || bare == "bitbucket.org"))
        target = "git@" + bare;
    // GitHub's keys are pinned (published); other hosts are trusted on first use and pinned
    // in berth's known_hosts from then on. Never StrictHostKeyChecking=no.
    std::string host_policy = bare == "github.com" ? "yes" : "accept-new";
    std::vector<std::string> argv = {"ssh", "-T",
                                     "-o",  "BatchMode=yes",
                                     "-o",  "ConnectTimeout=" + std::to_string(opt.timeout_s),
                                     "-o",  "StrictHostKeyChecking=" + host_policy};
    if (!opt.ssh_config.empty()) argv.insert(argv.end(), {"-F", opt.ssh_config});
    if (!opt.known_hosts.empty()) {
        BERTH_TRY(seed_known_hosts(opt.known_hosts));
        argv.insert(argv.end(), {"-o", "UserKnownHostsFile=\"" + opt.known_hosts.string() +
                                           "\" ~/.ssh/known_hosts"});
    }
    if (opt.port > 0) argv.insert(argv.end(), {"-p", std::to_string(opt.port)});
    std::error_code ec;
    if (!opt.key_dir.empty() && stdfs::is_directory(opt.key_dir, ec)) {
        std::vector<std::string> ids;
        for (const auto &e : stdfs::directory_iterator(opt.key_dir, ec)) {
            auto text = fs::read_file(e.path());
            if (text && classify_key_text(*text) == KeyText::private_key) ids.push_back(e.path());
        }
        std::sort(ids.begin(), ids.end());
        for (const auto &id : ids)
            argv.insert(argv.end(), {"-i", id});
    }
    proc::Options po;
    po.timeout = std::chrono::seconds(opt.timeout_s + 5);
    auto quick = argv;
    quick.push_back(target);
    auto r = proc::run(quick, po);
    if (!r) return tl::unexpected(r.error());
    auto res = diagnose_ssh(r->timed_out ? 255 : r->status, r->out + r->err, "", bare);
    if (res.cause == KeyTestCause::ok) return res;
    auto verbose = argv;
    verbose.insert(verbose.begin() + 1, "-v");
    verbose.push_back(target);
    auto v = proc::run(verbose, po);
    if (!v) return tl::unexpected(v.error());
    if (v->timed_out) return KeyTestResult{KeyTestCause::network, "ssh to " + bare + " timed out"};
    return diagnose_ssh(v->status, v->out, v->err, bare);
}

} // namespace berth
