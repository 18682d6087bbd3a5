// berth keys: SSH keys on a machine whose $HOME is wiped at every boot, kept in the store.
#pragma once

#include "util/result.hpp"

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace berth {

namespace stdfs = std::filesystem;

// Directory 700; private keys, authorized_keys and config 600; *.pub and known_hosts 644.
// Returns how many modes were changed; a missing directory is zero, not an error.
Result<std::size_t> fix_ssh_permissions(const stdfs::path &dir);

enum class KeyText { private_key, public_key, unknown };

// Looks at a file's content, never its name.
KeyText classify_key_text(std::string_view text);

struct KeyInfo {
    std::string name;        // "id_ed25519"
    std::string type;        // "ED25519"
    std::string fingerprint; // "SHA256:..."
    std::string comment;
    std::string public_key; // the .pub line
    bool has_private = false;
};

// ssh-keygen -t ed25519 into dir/name; refuses to overwrite an existing key.
Result<KeyInfo> keys_generate(const stdfs::path &dir, const std::string &name,
                              const std::string &comment);

struct ImportReport {
    std::vector<std::string> written, derived, unchanged, warnings;
};

// Imports key files into dir. Everything is checked before anything is written: a private key
// under a .pub name, a public key that does not match its private key, or a different key
// already at the destination refuses the whole import.
Result<ImportReport> keys_import(const stdfs::path &dir, const std::vector<std::string> &files);

// Keys in dir (pairs by name), with fingerprints.
Result<std::vector<KeyInfo>> keys_list(const stdfs::path &dir);

enum class KeyTestCause {
    ok,
    no_key_offered,
    key_not_registered,
    passphrase_needed,
    host_key_changed,
    host_key_unknown,
    network,
    unknown
};

const char *cause_name(KeyTestCause c);

struct KeyTestResult {
    KeyTestCause cause = KeyTestCause::unknown;
    std::string message; // one line: what happened and what to do
};

// Reads the outcome of `ssh -T` (and, after a failure, the `-v` rerun's stderr).
// GitHub answers a good key with exit 1 and "successfully authenticated": that is success.
KeyTestResult diagnose_ssh(int status, std::string_view output, std::string_view verbose,
                           const std::string &host);

struct KeyTestOptions {
    std::string host = "github.com"; // [user@]host
    int port = 0;                    // 0: from ssh config
    stdfs::path key_dir;             // keys to offer besides the user's defaults and agent
    stdfs::path known_hosts;         // berth's pinned known_hosts (seeded with GitHub's keys)
    std::string ssh_config;          // -F file, if set
    int timeout_s = 15;
};

// Runs OpenSSH non-interactively; on failure reruns with -v to name the cause.
Result<KeyTestResult> keys_test(const KeyTestOptions &opt);

// GitHub's published host keys, written into berth's known_hosts if missing.
Result<> seed_known_hosts(const stdfs::path &file);

} // namespace berth
