#include "store/s3_backend.hpp"

#include "core/paths.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/http.hpp"
#include "util/strings.hpp"

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <thread>

namespace berth::store {

namespace {

using Credentials = S3Credentials;

std::string env(const char *n) {
    const char *v = std::getenv(n);
    return v ? v : "";
}

// One [section] of an INI file as the AWS CLI writes it: key = value lines.
std::map<std::string, std::string> ini_section(const std::string &path, const std::string &name) {
    std::map<std::string, std::string> out;
    auto text = fs::read_file(path);
    if (!text) return out;
    bool in = false;
    for (auto line : str::split(*text, '\n')) {
        line = str::trim(line);
        if (line.empty() || line[0] == '#' || line[0] == ';') continue;
        if (line[0] == '[') {
            auto sec = str::trim(line.substr(1, line.find(']') - 1));
            in = sec == name || sec == "profile " + name;
            continue;
        }
        auto eq = line.find('=');
        if (in && eq != std::string::npos)
            out[str::trim(line.substr(0, eq))] = str::trim(line.substr(eq + 1));
    }
    return out;
}

Result<Credentials> find_credentials(const std::string &named) {
    Credentials c;
    std::string profile = !named.empty()               ? named
                          : env("AWS_PROFILE").empty() ? "default"
                                                       : env("AWS_PROFILE");
    auto home = paths::home();
    std::string cred_file = env("AWS_SHARED_CREDENTIALS_FILE").empty()
                                ? (home / ".aws" / "credentials").string()
                                : env("AWS_SHARED_CREDENTIALS_FILE");
    std::string cfg_file = env("AWS_CONFIG_FILE").empty() ? (home / ".aws" / "config").string()
                                                          : env("AWS_CONFIG_FILE");
    if (named.empty() && !env("AWS_ACCESS_KEY_ID").empty()) {
        c.key = env("AWS_ACCESS_KEY_ID");
        c.secret = env("AWS_SECRET_ACCESS_KEY");
        c.token = env("AWS_SESSION_TOKEN");
    } else {
        auto sec = ini_section(cred_file, profile);
        c.key = sec["aws_access_key_id"];
        c.secret = sec["aws_secret_access_key"];
        c.token = sec["aws_session_token"];
    }
    if (c.key.empty() || c.secret.empty())
        return fail("no S3 credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile '" +
                        profile + "' in " + cred_file + ")",
                    "set them as for the AWS CLI");
    c.region = env("AWS_REGION");
    if (c.region.empty()) c.region = env("AWS_DEFAULT_REGION");
    if (c.region.empty()) c.region = ini_section(cfg_file, profile)["region"];
    if (c.region.empty()) c.region = "us-east-1";
    c.ca_bundle = env("AWS_CA_BUNDLE"); // as the AWS CLI: a private CA (MinIO, a lab server)
    if (c.region.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
        return fail("the S3 region '" + c.region + "' is malformed");
    return c;
}

// The text of the first <tag>...</tag> in xml, entities decoded.
std::string xml_text(const std::string &xml, const std::string &tag, std::size_t from = 0,
                     std::size_t *end = nullptr) {
    auto open = "<" + tag + ">", close = "</" + tag + ">";
    auto a = xml.find(open, from);
    if (a == std::string::npos) return "";
    a += open.size();
    auto b = xml.find(close, a);
    if (b == std::string::npos) return "";
    if (end) *end = b + close.size();
    std::string raw = xml.substr(a, b - a), out;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '&') {
            out += raw[i];
            continue;
        }
        auto semi = raw.find(';', i);
        std::string ent = semi == std::string::npos ? "" : raw.substr(i, semi - i + 1);
        if (ent == "&amp;")
            out += '&';
        else if (ent == "&lt;")
            out += '<';
        else if (ent == "&gt;")
            out += '>';
        else if (ent == "&quot;")
            out += '"';
        else if (ent == "&apos;")
            out += '\'';
        else {
            out += '&';
            continue;
        }
        i = semi;
    }
    return out;
}

class S3Backend : public Backend {
public:
    S3Backend(RepoLocation loc, Credentials c) : m_loc(std::move(loc)), m_cred(std::move(c)) {
        const char *part = std::getenv("BERTH_S3_PART_BYTES");
        if (part && std::atol(part) >= (1 << 20))
            m_part = static_cast<std::size_t>(std::atol(part));
    }
    std::string location() const override { return m_loc.text; }

    Result<std::optional<std::string>> get(const std::string &name) override {
        BERTH_TRY(check_name(name));
        auto r = request("GET", key_url(name), {}, "", {200, 404});
        if (!r) return tl::unexpected(r.error());
        if (r->status == 404) return std::optional<std::string>();
        return std::optional<std::string>(std::move(r->body));
    }

    Result<std::string> get_range(const std::string &name, std::uint64_t offset,
                                  std::uint32_t len) override {
        BERTH_TRY(check_name(name));
        if (len == 0) return std::string();
        auto r = request(
            "GET", key_url(name),
            {"Range: bytes=" + std::to_string(offset) + "-" + std::to_string(offset + len - 1)}, "",
            {200, 206});
        if (!r) return tl::unexpected(r.error());
        std::string body = std::move(r->body);
        if (r->status == 200) { // the whole object: a server that ignores Range
            if (body.size() < offset + len)
                return fail(name + " is truncated", "run `berth verify`");
            body = body.substr(offset, len);
        }
        if (body.size() != len) return fail(name + " is truncated", "run `berth verify`");
        return body;
    }

    Result<> put(const std::string &name, std::string_view bytes, bool) override {
        BERTH_TRY(check_name(name));
        if (bytes.size() > m_part) return put_multipart(name, bytes);
        // If-None-Match: S3's conditional write (where supported): never replace an object.
        return request("PUT", key_url(name), {"If-None-Match: *"}, std::string(bytes), {200})
            .map([](auto &&) {});
    }

    Result<> sync() override { return {}; } // a 200 to a PUT means stored
    Result<std::vector<ListedFile>> list(const std::string &folder) override {
        std::vector<ListedFile> out;
        std::string token, want = key_of(folder + "/");
        for (int page = 0; page < 100000; ++page) {
            std::string url = bucket_url() + "?list-type=2&prefix=" + escape(want) +
                              (token.empty() ? "" : "&continuation-token=" + escape(token));
            auto r = request("GET", url, {}, "", {200});
            if (!r) return tl::unexpected(r.error());
            auto l = parse_s3_listing(r->body);
            if (!l) return fail(m_loc.text + ": " + l.error().what);
            for (auto &f : l->files) {
                if (f.name.rfind(want, 0) != 0) continue; // only what was asked for
                f.name = folder + "/" + f.name.substr(want.size());
                if (f.name.find("..") != std::string::npos) continue;
                out.push_back(std::move(f));
            }
            if (!l->truncated) return out;
            if (l->next_token.empty() || l->next_token == token)
                return fail(m_loc.text + " sent a listing that does not advance");
            token = l->next_token;
        }
        return fail(m_loc.text + ": a listing of more than 100,000 pages");
    }

    Result<> remove(const std::string &name) override {
        auto slash = name.rfind('/');
        bool stray =
            name.rfind("data/", 0) == 0 && slash == 7 && name.find("..") == std::string::npos;
        if (!valid_repo_name(name) && !stray)
            return fail("bad repository file name '" + name + "'");
        return request("DELETE", key_url(name), {}, "", {200, 204, 404}).map([](auto &&) {});
    }

    // S3 has no locks. Objects never collide (random or content names), so concurrent saves
    // are safe; a prune while another berth saves is not, and the docs say so.
    Result<> lock(bool) override { return {}; }

    Result<> create(const std::vector<std::pair<std::string, std::string>> &files) override {
        auto there = get("config.json");
        if (!there) return tl::unexpected(there.error());
        if (*there) return {};
        auto any = request("GET",
                           bucket_url() + "?list-type=2&max-keys=1&prefix=" +
                               escape(m_loc.prefix.empty() ? "" : m_loc.prefix + "/"),
                           {}, "", {200});
        if (!any) return tl::unexpected(any.error());
        auto l = parse_s3_listing(any->body);
        if (l && !l->files.empty())
            return fail(m_loc.text + " is not empty and not a berth repository",
                        "use an empty bucket or another prefix");
        for (const auto &[name, bytes] : files) // config.json last: a repository only when whole
            BERTH_TRY(put(name, bytes, true));
        return {};
    }

private:
    Result<> check_name(const std::string &name) const {
        if (!valid_repo_name(name)) return fail("bad repository file name '" + name + "'");
        return {};
    }
    std::string key_of(const std::string &name) const {
        return m_loc.prefix.empty() ? name : m_loc.prefix + "/" + name;
    }
    std::string bucket_url() const { return m_loc.endpoint + "/" + m_loc.bucket; }
    std::string key_url(const std::string &name) const { return bucket_url() + "/" + key_of(name); }
    static std::string escape(const std::string &s) {
        std::string out;
        for (unsigned char c : s) {
            if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
                out += static_cast<char>(c);
            } else {
                char b[4];
                std::snprintf(b, sizeof b, "%%%02X", c);
                out += b;
            }
        }
        return out;
    }

    Result<http::Response> request(const std::string &method, const std::string &url,
                                   std::vector<std::string> headers, std::string body,
                                   std::initializer_list<long> ok, bool want_headers = false) {
        http::Request rq;
        rq.method = method;
        rq.url = url;
        rq.body = std::move(body);
        rq.timeout = std::chrono::minutes(5);
        rq.max_body = 96u << 20;
        rq.aws_sigv4 = "aws:amz:" + m_cred.region + ":s3";
        rq.aws_credentials = m_cred.key + ":" + m_cred.secret;
        rq.want_headers = want_headers;
        rq.ca_file = m_cred.ca_bundle;
        headers.push_back("x-amz-content-sha256: " + sha256_hex(rq.body));
        if (!m_cred.token.empty()) headers.push_back("x-amz-security-token: " + m_cred.token);
        rq.headers = std::move(headers);
        auto what = method + " " + url.substr(m_loc.endpoint.size());
        for (int attempt = 0;; ++attempt) {
            auto r = http::send(rq);
            bool again = false;
            if (!r) {
                again =
                    r.error().kind == ErrorKind::network || r.error().kind == ErrorKind::timeout;
            } else {
                for (long s : ok)
                    if (r->status == s) return r;
                again = r->status == 429 || r->status >= 500;
            }
            if (!again || attempt >= 5) {
                if (!r)
                    return fail(m_loc.text + ": " + what + ": " + r.error().what, r.error().fix);
                std::string code = xml_text(r->body, "Code"), msg = xml_text(r->body, "Message");
                return fail(m_loc.text + ": " + what + " answered " + std::to_string(r->status) +
                                (code.empty() ? "" : " " + code) + (msg.empty() ? "" : ": " + msg),
                            r->status == 403 ? "check the credentials and the bucket's policy"
                                             : "retry later");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
        }
    }

    Result<> put_multipart(const std::string &name, std::string_view bytes) {
        auto url = key_url(name);
        auto start = request("POST", url + "?uploads", {}, "", {200});
        if (!start) return tl::unexpected(start.error());
        std::string upload = xml_text(start->body, "UploadId");
        if (upload.empty()) return fail(m_loc.text + " did not start a multipart upload");
        std::string done = "<CompleteMultipartUpload>";
        Result<> r;
        for (std::size_t at = 0, part = 1; at < bytes.size(); at += m_part, ++part) {
            auto piece = bytes.substr(at, m_part);
            auto p = request(
                "PUT", url + "?partNumber=" + std::to_string(part) + "&uploadId=" + escape(upload),
                {}, std::string(piece), {200}, true);
            if (!p) {
                r = tl::unexpected(p.error());
                break;
            }
            std::string etag;
            for (const auto &[k, v] : p->headers)
                if (k == "etag") etag = v;
            if (etag.empty() || etag.find('<') != std::string::npos) {
                r = fail(m_loc.text + " answered a part without its ETag");
                break;
            }
            done += "<Part><PartNumber>" + std::to_string(part) + "</PartNumber><ETag>" + etag +
                    "</ETag></Part>";
        }
        if (!r) {
            (void)request("DELETE", url + "?uploadId=" + escape(upload), {}, "", {200, 204, 404});
            return r;
        }
        done += "</CompleteMultipartUpload>";
        auto fin = request("POST", url + "?uploadId=" + escape(upload), {}, done, {200});
        if (!fin) return tl::unexpected(fin.error());
        // S3 may answer 200 with an error inside.
        if (fin->body.find("<Error>") != std::string::npos)
            return fail(m_loc.text + ": completing " + name + ": " + xml_text(fin->body, "Code"));
        return {};
    }

    RepoLocation m_loc;
    Credentials m_cred;
    std::size_t m_part = 16u << 20;
};

} // namespace

Result<S3Listing> parse_s3_listing(const std::string &xml) {
    S3Listing l;
    if (xml.find("<ListBucketResult") == std::string::npos)
        return fail("a listing answer that is not ListBucketResult");
    std::size_t at = 0;
    for (;;) {
        std::size_t end = 0;
        auto item = xml_text(xml, "Contents", at, &end);
        if (end == 0) break;
        at = end;
        // xml_text decoded the entities of the whole element; its parts are found in that.
        std::string key = xml_text("<x>" + item + "</x>", "Key");
        std::string size = xml_text("<x>" + item + "</x>", "Size");
        if (key.empty() || key.size() > 1024 || size.empty() || size.size() > 15 ||
            size.find_first_not_of("0123456789") != std::string::npos)
            return fail("a listing entry without a key or size");
        l.files.push_back({key, std::stoull(size)});
    }
    l.truncated = xml_text(xml, "IsTruncated") == "true";
    l.next_token = xml_text(xml, "NextContinuationToken");
    return l;
}

Result<S3Credentials> s3_credentials(const std::string &profile) {
    return find_credentials(profile);
}

Result<std::unique_ptr<Backend>> s3_backend(const RepoLocation &loc) {
    auto c = find_credentials("");
    if (!c) return tl::unexpected(c.error());
    return std::unique_ptr<Backend>(new S3Backend(loc, std::move(*c)));
}

Result<std::unique_ptr<Backend>> s3_backend(const RepoLocation &loc, S3Credentials c) {
    if (c.key.empty() || c.secret.empty()) return fail("S3 credentials without a key");
    if (c.region.empty()) c.region = "us-east-1";
    if (c.region.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") != std::string::npos)
        return fail("the S3 region '" + c.region + "' is malformed");
    return std::unique_ptr<Backend>(new S3Backend(loc, std::move(c)));
}

} // namespace berth::store
