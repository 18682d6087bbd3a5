// Where a repository is, from one string (--repo, config `repo`):
//   /a/dir, ./dir, ~/dir                        a directory on this machine
//   ssh://[user@]host[:port]/path              on an SSH host (an ~/.ssh/config alias works as
//   ssh://[user@]host[:port]/~/path            host); /~/ is relative to the login's home
//   s3:https://endpoint/bucket[/prefix]        an S3-compatible bucket (path-style requests)
// Anything else with a scheme (sftp://, rclone:, b2:...) is an error, never a directory named
// after it.
#pragma once

#include "util/result.hpp"

#include <filesystem>
#include <string>

namespace berth::store {

struct RepoLocation {
    enum Kind { local, ssh, s3 } kind = local;
    std::filesystem::path dir; // local
    std::string user, host;    // ssh
    int port = 0;              // ssh; 0: ssh's own default (or the alias's)
    std::string path;          // ssh: the path on the host ("repo" is in the login's home)
    std::string url;           // s3: https://endpoint/bucket[/prefix]
    std::string endpoint, bucket, prefix; // s3: "https://host[:port]", "bucket", "a/b" or ""
    std::string text;                     // as given, for messages
};

Result<RepoLocation> parse_repo_location(const std::string &s);

} // namespace berth::store
