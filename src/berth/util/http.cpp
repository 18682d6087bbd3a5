#include "util/http.hpp"

#include <cctype>
#include <curl/curl.h>
#include <mutex>

namespace berth::http {

namespace {

struct Sink {
    std::string *body;
    std::size_t max;
    bool too_big = false;
};

std::size_t on_body(char *p, std::size_t size, std::size_t n, void *out) {
    auto *s = static_cast<Sink *>(out);
    if (s->body->size() + size * n > s->max) {
        s->too_big = true;
        return 0; // curl stops with CURLE_WRITE_ERROR
    }
    s->body->append(p, size * n);
    return size * n;
}

std::size_t on_header(char *p, std::size_t size, std::size_t n, void *out) {
    auto *res = static_cast<Response *>(out);
    std::string line(p, size * n);
    auto colon = line.find(':');
    if (colon != std::string::npos && res->headers.size() < 200) {
        std::string name = line.substr(0, colon), value = line.substr(colon + 1);
        for (auto &c : name)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        auto b = value.find_first_not_of(" \t"), e = value.find_last_not_of(" \t\r\n");
        res->headers.emplace_back(name, b == std::string::npos ? "" : value.substr(b, e - b + 1));
    }
    return size * n;
}

} // namespace

Result<Response> send(const Request &r) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    // One handle per thread, reset between requests: curl keeps its connections (and TLS
    // sessions) open, so a run of requests to one host pays one handshake, not one each.
    struct Handle {
        CURL *c = curl_easy_init();
        ~Handle() {
            if (c) curl_easy_cleanup(c);
        }
    };
    thread_local Handle handle;
    CURL *c = handle.c;
    if (!c) return fail("cannot start libcurl");
    curl_easy_reset(c);
    Response res;
    curl_slist *headers = nullptr;
    for (const auto &h : r.headers)
        headers = curl_slist_append(headers, h.c_str());
    curl_easy_setopt(c, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    if (!r.body.empty() || r.method == "POST" || r.method == "PUT") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r.body.c_str());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(r.body.size()));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    Sink sink{&res.body, r.max_body};
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(r.timeout.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "berth/0.1");
    if (!r.aws_sigv4.empty()) {
        curl_easy_setopt(c, CURLOPT_AWS_SIGV4, r.aws_sigv4.c_str());
        curl_easy_setopt(c, CURLOPT_USERPWD, r.aws_credentials.c_str());
    }
    if (!r.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, r.ca_file.c_str());
    if (r.want_headers) {
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(c, CURLOPT_HEADERDATA, &res);
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res.status);
        char *ct = nullptr;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
        if (ct) res.content_type = ct;
    }
    curl_slist_free_all(headers);
    if (sink.too_big)
        return fail(ErrorKind::malformed,
                    host_of(r.url) + " sent an answer larger than " +
                        std::to_string(r.max_body >> 20) + " MiB",
                    "retry later");
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return fail(ErrorKind::timeout, host_of(r.url) + ": " + curl_easy_strerror(rc),
                    "retry later");
    if (rc != CURLE_OK)
        return fail(ErrorKind::network, host_of(r.url) + ": " + curl_easy_strerror(rc),
                    "check the network");
    return res;
}

} // namespace berth::http
