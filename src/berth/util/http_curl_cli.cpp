// The static agent build (the berth copied onto rented machines) links no libcurl: its few
// HTTP requests (a machine saving to an S3 repository itself) go through the machine's own
// `curl` program. Everything secret (the credentials, the headers) travels in a config file
// that only this user can read, in a private directory removed afterwards: never on a command
// line. Needs curl 7.75 or newer for SigV4.
#include "util/fs.hpp"
#include "util/http.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

namespace berth::http {

namespace {

std::string quoted(const std::string &v) {
    std::string out = "\"";
    for (char c : v) {
        if (c == '"' || c == '\\') out += '\\';
        if (c == '\n' || c == '\r') continue; // never a second option smuggled in
        out += c;
    }
    return out + "\"";
}

// A berth killed with -9 mid-request could not remove its directory (it holds credentials):
// directories are named by their process, and those of dead processes go at the next request.
void remove_stale(const std::string &base) {
    std::error_code ec;
    for (const auto &e : std::filesystem::directory_iterator(base, ec)) {
        auto name = e.path().filename().string();
        if (name.rfind("berth-http-", 0) != 0) continue;
        int pid = std::atoi(name.c_str() + 11);
        if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) continue;
        std::filesystem::remove_all(e.path(), ec);
    }
}

} // namespace

Result<Response> send(const Request &r) {
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    remove_stale(base);
    std::string tmpl = base + "/berth-http-" + std::to_string(::getpid()) + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) return fail_errno("a private directory in " + base, errno);
    std::filesystem::path dir = tmpl;
    struct Gone {
        std::filesystem::path d;
        ~Gone() {
            std::error_code ec;
            std::filesystem::remove_all(d, ec);
        }
    } gone{dir};
    std::string cfg =
        "silent\nshow-error\nurl = " + quoted(r.url) + "\nrequest = " + quoted(r.method) +
        "\noutput = " + quoted((dir / "body").string()) +
        "\ndump-header = " + quoted((dir / "headers").string()) +
        "\nwrite-out = \"%{http_code}\"\nmax-time = " +
        std::to_string(std::max<long>(1, static_cast<long>(r.timeout.count() / 1000))) +
        "\nconnect-timeout = 10\nuser-agent = \"berth/0.1\"\n";
    for (const auto &h : r.headers)
        cfg += "header = " + quoted(h) + "\n";
    if (!r.aws_sigv4.empty())
        cfg +=
            "aws-sigv4 = " + quoted(r.aws_sigv4) + "\nuser = " + quoted(r.aws_credentials) + "\n";
    if (!r.ca_file.empty()) cfg += "cacert = " + quoted(r.ca_file) + "\n";
    if (!r.body.empty() || r.method == "POST" || r.method == "PUT") {
        BERTH_TRY(fs::write_file_atomic(dir / "request", r.body, 0600, false));
        cfg += "data-binary = " + quoted("@" + (dir / "request").string()) + "\n";
    }
    BERTH_TRY(fs::write_file_atomic(dir / "config", cfg, 0600, false));
    auto out = proc::run(
        {"curl", "--config", (dir / "config").string()},
        {.input = std::string(), .env = {}, .timeout = r.timeout + std::chrono::seconds(5)});
    if (!out)
        return fail(ErrorKind::network, host_of(r.url) + ": " + out.error().what,
                    "this machine needs curl 7.75 or newer to reach S3 itself");
    if (out->status != 0) {
        auto why = str::trim(out->err);
        bool timeout = out->status == 28;
        return fail(timeout ? ErrorKind::timeout : ErrorKind::network,
                    host_of(r.url) + ": curl exit " + std::to_string(out->status) +
                        (why.empty() ? "" : " (" + why + ")"),
                    out->status == 127 ? "install curl on this machine" : "check the network");
    }
    Response res;
    res.status = std::atol(str::trim(out->out).c_str());
    auto body = fs::read_file(dir / "body");
    if (body) res.body = std::move(*body);
    if (res.body.size() > r.max_body)
        return fail(ErrorKind::malformed, host_of(r.url) + " sent an answer that is too large");
    if (r.want_headers)
        if (auto h = fs::read_file(dir / "headers"))
            for (auto line : str::split(*h, '\n')) {
                auto colon = line.find(':');
                if (colon == std::string::npos) continue;
                std::string name = line.substr(0, colon);
                for (auto &c : name)
                    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
                res.headers.emplace_back(name, str::trim(line.substr(colon + 1)));
            }
    return res;
}

} // namespace berth::http
