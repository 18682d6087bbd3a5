#include "store/location.hpp"

#include <cctype>
#include <cstdlib>

namespace berth::store {

namespace {

Error bad(const std::string &s, const std::string &why) {
    return Error{"repository '" + s + "': " + why,
                 "use a directory, ssh://[user@]host[:port]/path, or s3:https://endpoint/bucket",
                 2};
}

bool safe_name(const std::string &s) {
    if (s.empty() || s[0] == '-') return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-' && c != '_')
            return false;
    return true;
}

} // namespace

Result<RepoLocation> parse_repo_location(const std::string &s) {
    RepoLocation loc;
    loc.text = s;
    if (s.empty()) return tl::unexpected(bad(s, "empty"));
    for (char c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
            return tl::unexpected(bad(s, "control characters"));
    if (s.rfind("ssh://", 0) == 0) {
        loc.kind = RepoLocation::ssh;
        std::string rest = s.substr(6);
        auto slash = rest.find('/');
        if (slash == std::string::npos || slash + 1 >= rest.size())
            return tl::unexpected(bad(s, "no path after the host"));
        std::string authority = rest.substr(0, slash), path = rest.substr(slash);
        auto at = authority.rfind('@');
        if (at != std::string::npos) {
            loc.user = authority.substr(0, at);
            authority = authority.substr(at + 1);
            if (!safe_name(loc.user)) return tl::unexpected(bad(s, "a bad user name"));
        }
        auto colon = authority.rfind(':');
        if (colon != std::string::npos) {
            std::string port = authority.substr(colon + 1);
            authority = authority.substr(0, colon);
            if (port.empty() || port.size() > 5 ||
                port.find_first_not_of("0123456789") != std::string::npos ||
                std::atoi(port.c_str()) < 1 || std::atoi(port.c_str()) > 65535)
                return tl::unexpected(bad(s, "a bad port"));
            loc.port = std::atoi(port.c_str());
        }
        if (!safe_name(authority)) return tl::unexpected(bad(s, "a bad host name"));
        loc.host = authority;
        loc.path = path.rfind("/~/", 0) == 0 ? path.substr(3) : path;
        if (loc.path.empty() || loc.path == "/") return tl::unexpected(bad(s, "no path"));
        for (const auto &part : {std::string("/../"), std::string("/..")})
            if (loc.path.find(part) != std::string::npos || loc.path.rfind("../", 0) == 0)
                return tl::unexpected(bad(s, "'..' in the path"));
        return loc;
    }
    if (s.rfind("s3:", 0) == 0) {
        loc.kind = RepoLocation::s3;
        loc.url = s.substr(3);
        if (loc.url.rfind("https://", 0) != 0 && loc.url.rfind("http://", 0) != 0)
            return tl::unexpected(bad(s, "an S3 location is s3:https://endpoint/bucket[/prefix]"));
        auto host_start = loc.url.find("://") + 3;
        auto slash = loc.url.find('/', host_start);
        std::string host = loc.url.substr(
            host_start, slash == std::string::npos ? std::string::npos : slash - host_start);
        if (host.empty() ||
            host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789.-:[]") != std::string::npos)
            return tl::unexpected(bad(s, "a bad endpoint host"));
        loc.endpoint = loc.url.substr(0, host_start) + host;
        std::string rest = slash == std::string::npos ? "" : loc.url.substr(slash + 1);
        while (!rest.empty() && rest.back() == '/')
            rest.pop_back();
        auto cut = rest.find('/');
        loc.bucket = rest.substr(0, cut);
        loc.prefix = cut == std::string::npos ? "" : rest.substr(cut + 1);
        if (loc.bucket.size() < 3 || loc.bucket.size() > 63 ||
            loc.bucket.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-") !=
                std::string::npos)
            return tl::unexpected(bad(s, "no bucket, or a bucket name S3 does not allow"));
        if (loc.prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789/_.-") != std::string::npos ||
            loc.prefix.find("//") != std::string::npos || loc.prefix == ".." ||
            loc.prefix.find("../") != std::string::npos ||
            (loc.prefix.size() >= 3 && loc.prefix.compare(loc.prefix.size() - 3, 3, "/..") == 0))
            return tl::unexpected(bad(s, "the prefix may hold letters, digits and / _ . - only"));
        return loc;
    }
    // A scheme (letters, digits, + . -, then ':') before any '/': not a directory.
    auto colon = s.find(':');
    if (colon != std::string::npos && colon > 0) {
        std::string scheme = s.substr(0, colon);
        bool is_scheme = scheme.find('/') == std::string::npos;
        for (char c : scheme)
            if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '.' && c != '-')
                is_scheme = false;
        if (is_scheme)
            return tl::unexpected(bad(s, "unknown scheme '" + scheme +
                                             ":' (a directory named so: ./" + s + ")" +
                                             (scheme == "sftp" ? " (berth speaks ssh://)" : "")));
    }
    loc.kind = RepoLocation::local;
    if (s == "~" || s.rfind("~/", 0) == 0) {
        const char *home = std::getenv("HOME");
        loc.dir = std::filesystem::path(home ? home : "") / (s.size() > 2 ? s.substr(2) : "");
    } else {
        loc.dir = s;
    }
    return loc;
}

} // namespace berth::store
