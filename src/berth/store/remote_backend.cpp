#include "store/remote_backend.hpp"

#include <cerrno>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <unistd.h>

namespace berth::store {

using nlohmann::json;

namespace {

// Requests and answers are bounded: a length beyond this is damage, never an allocation.
// The largest honest frame is a pack (32 MiB by default, BERTH_PACK_BYTES in tests).
constexpr std::uint32_t k_max_frame = (256u << 20) + 4096;
constexpr int k_protocol = 2;

Result<> write_all(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail_errno("the repository connection", errno ? errno : EPIPE);
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

// Reads exactly n bytes; false on end of stream.
Result<bool> read_exact(int fd, char *buf, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail_errno("the repository connection", errno);
        if (r == 0) {
            if (got == 0) return false;
            return fail("the repository connection ended in the middle of a message",
                        "see the remote host's error above");
        }
        got += static_cast<std::size_t>(r);
    }
    return true;
}

std::string frame_head(char op, std::size_t n) {
    std::string out(1, op);
    auto len = static_cast<std::uint32_t>(n);
    out.append(reinterpret_cast<const char *>(&len), 4);
    return out;
}

struct Frame {
    char op = 0;
    std::string body;
};

// One frame; nullopt at a clean end of stream.
Result<std::optional<Frame>> read_frame(int fd) {
    char head[5];
    auto ok = read_exact(fd, head, 5);
    if (!ok) return tl::unexpected(ok.error());
    if (!*ok) return std::optional<Frame>{};
    std::uint32_t n;
    std::memcpy(&n, head + 1, 4);
    if (n > k_max_frame)
        return fail("the repository connection sent a message of " + std::to_string(n) +
                        " bytes (damaged, or not berth at the other end)",
                    "check that the host runs `berth repo serve`");
    Frame f{head[0], std::string(n, '\0')};
    if (n) {
        auto body = read_exact(fd, f.body.data(), n);
        if (!body) return tl::unexpected(body.error());
        if (!*body) return fail("the repository connection ended in the middle of a message");
    }
    return std::optional<Frame>{std::move(f)};
}

template <class T> void put_int(std::string &out, T v) {
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
}

// A name, then what follows it: u16 length, the name.
void put_name(std::string &out, const std::string &name) {
    put_int<std::uint16_t>(out, static_cast<std::uint16_t>(name.size()));
    out += name;
}
bool get_name(std::string_view &b, std::string &name) {
    if (b.size() < 2) return false;
    std::uint16_t n;
    std::memcpy(&n, b.data(), 2);
    if (b.size() < 2u + n) return false;
    name.assign(b.substr(2, n));
    b.remove_prefix(2u + n);
    return true;
}

class RemoteBackend : public Backend {
public:
    RemoteBackend(proc::Pipe p, std::string where) : m_pipe(p), m_where(std::move(where)) {}
    ~RemoteBackend() override {
        if (m_pipe.pid > 0) {
            (void)proc::wait_pipe(m_pipe); // closing its stdin ends the serve; then it is reaped
            return;
        }
        if (m_pipe.in >= 0) ::close(m_pipe.in);
        if (m_pipe.out >= 0) ::close(m_pipe.out);
    }

    Result<> hello(int *exit_status) {
        auto h = call('H', json{{"version", k_protocol}}.dump());
        if (!h) {
            if (exit_status && m_pipe.pid > 0) {
                *exit_status = proc::wait_pipe(m_pipe);
                m_pipe.pid = -1;
                m_pipe.in = m_pipe.out = -1;
            }
            return tl::unexpected(h.error());
        }
        auto j = json::parse(*h, nullptr, false);
        if (!j.is_object() || !j.contains("append_only") || !j["append_only"].is_boolean())
            return fail("the repository at " + m_where + " answered hello with something else",
                        "check that the host runs the same berth's `repo serve`");
        m_append_only = j["append_only"].get<bool>();
        return {};
    }

    std::string location() const override { return m_where; }
    bool append_only() const override { return m_append_only; }
    std::uint64_t sent() const { return m_sent; }

    Result<std::optional<std::string>> get(const std::string &name) override {
        std::lock_guard lk(m_mu);
        std::string body;
        put_name(body, name);
        auto b = call('G', body);
        if (!b) return tl::unexpected(b.error());
        if (b->empty()) return fail(m_where + " sent a torn answer");
        if ((*b)[0] == 0) return std::optional<std::string>();
        return std::optional<std::string>(b->substr(1));
    }

    Result<std::string> get_range(const std::string &name, std::uint64_t offset,
                                  std::uint32_t len) override {
        std::lock_guard lk(m_mu);
        std::string body;
        put_name(body, name);
        put_int(body, offset);
        put_int(body, len);
        auto b = call('R', body);
        if (b && b->size() != len)
            return fail(m_where + " sent " + std::to_string(b->size()) + " bytes of " + name +
                        ", not " + std::to_string(len));
        return b;
    }

    Result<> put(const std::string &name, std::string_view bytes, bool durable) override {
        std::lock_guard lk(m_mu);
        std::string head;
        put_name(head, name);
        head += static_cast<char>(durable ? 1 : 0);
        auto f = frame_head('P', head.size() + bytes.size()) + head;
        m_sent += f.size() + bytes.size();
        BERTH_TRY(write_all(m_pipe.in, f));
        return write_all(m_pipe.in, bytes); // no answer: writes stream
    }

    Result<> sync() override { return simple('Y', ""); }
    Result<> check() override { return simple('Q', ""); }

    Result<std::vector<ListedFile>> list(const std::string &folder) override {
        std::lock_guard lk(m_mu);
        auto b = call('S', folder);
        if (!b) return tl::unexpected(b.error());
        auto j = json::parse(*b, nullptr, false);
        if (!j.is_array()) return fail(m_where + " sent a malformed listing");
        std::vector<ListedFile> out;
        for (const auto &e : j) {
            if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number_unsigned())
                return fail(m_where + " sent a malformed listing");
            std::string name = e[0].get<std::string>();
            // Only names under the folder asked for: a host cannot point berth elsewhere.
            if (name.rfind(folder + "/", 0) != 0 || name.find("..") != std::string::npos)
                return fail(m_where + " listed '" + name + "' under " + folder);
            out.push_back({name, e[1].get<std::uint64_t>()});
        }
        return out;
    }

    Result<> remove(const std::string &name) override {
        std::string body;
        put_name(body, name);
        return simple('D', body);
    }
    Result<> lock(bool exclusive) override {
        return simple('L', std::string(1, exclusive ? '\1' : '\0'));
    }
    Result<> create(const std::vector<std::pair<std::string, std::string>> &files) override {
        json j = json::array();
        for (const auto &[n, b] : files)
            j.push_back({n, b});
        return simple('C', j.dump());
    }

private:
    Result<> simple(char op, std::string_view body) {
        std::lock_guard lk(m_mu);
        return call(op, body).map([](auto &&) {});
    }
    Result<std::string> call(char op, std::string_view body) {
        auto f = frame_head(op, body.size());
        f.append(body);
        m_sent += f.size();
        BERTH_TRY(write_all(m_pipe.in, f));
        auto a = read_frame(m_pipe.out);
        if (!a) return tl::unexpected(a.error());
        if (!*a)
            return fail("the repository at " + m_where + " hung up",
                        "see the remote host's error above; is berth there and the path right?");
        if ((*a)->op == 'E') return fail(m_where + ": " + (*a)->body);
        if ((*a)->op != 'K') return fail("the repository at " + m_where + " answered out of turn");
        return std::move((*a)->body);
    }

    proc::Pipe m_pipe;
    std::string m_where;
    bool m_append_only = false;
    std::uint64_t m_sent = 0;
    std::mutex m_mu; // one conversation: restore's prefetcher reads from another thread
};

} // namespace

Result<std::unique_ptr<Backend>> connect_remote_backend(proc::Pipe pipe, std::string where,
                                                        int *exit_status) {
    auto r = std::make_unique<RemoteBackend>(pipe, std::move(where));
    BERTH_TRY(r->hello(exit_status));
    return std::unique_ptr<Backend>(std::move(r));
}

std::uint64_t remote_bytes_sent(const Backend &b) {
    auto *r = dynamic_cast<const RemoteBackend *>(&b);
    return r ? r->sent() : 0;
}

// ---- server ---------------------------------------------------------------------------------

int serve_repository(int in_fd, int out_fd, const std::filesystem::path &root, bool append_only) {
    auto local = local_backend(root);
    std::optional<Error> put_failure; // the first failed 'P', answered at the next 'Q' or 'Y'
    bool greeted = false;
    auto answer = [&](const Result<std::string> &r) {
        if (r) // the head, then the body where it is: an 8 MiB read is never copied again
            return write_all(out_fd, frame_head('K', r->size())) && write_all(out_fd, *r);
        std::string body =
            r.error().what + (r.error().fix.empty() ? std::string() : " (" + r.error().fix + ")");
        return bool(write_all(out_fd, frame_head('E', body.size()) + body));
    };
    auto done = [](Result<> r) -> Result<std::string> {
        if (!r) return tl::unexpected(r.error());
        return std::string();
    };
    auto refused = [&](const char *what) -> Result<std::string> {
        return fail(std::string("this repository is append-only for this key: it cannot ") + what,
                    std::string(what) + " from a machine that holds the owner's key");
    };
    for (;;) {
        auto f = read_frame(in_fd);
        if (!f) {
            (void)answer(tl::unexpected(f.error()));
            return 1;
        }
        if (!*f) return 0; // the client is done
        char op = (*f)->op;
        std::string_view b = (*f)->body;
        if (op == 'H') {
            auto j = json::parse(b, nullptr, false);
            if (!j.is_object() || j.value("version", 0) != k_protocol) {
                (void)answer(
                    fail("this berth speaks repository protocol " + std::to_string(k_protocol),
                         "use the same berth version on both ends"));
                return 1;
            }
            greeted = true;
            if (!answer(json{{"append_only", append_only}}.dump())) return 1;
            continue;
        }
        if (!greeted) {
            (void)answer(fail("the client spoke before hello"));
            return 1;
        }
        Result<std::string> r = std::string();
        std::string name;
        switch (op) {
        case 'P': {
            if (!get_name(b, name) || b.empty()) {
                if (!put_failure) put_failure = Error{"a torn write request"};
                continue;
            }
            bool durable = b[0] != 0;
            b.remove_prefix(1);
            if (put_failure) continue;
            if (append_only && name.rfind("keys/", 0) == 0) {
                put_failure = Error{"this repository is append-only for this key: it cannot "
                                    "add keys"};
                continue;
            }
            auto w = local->put(name, b, durable);
            if (!w) put_failure = w.error();
            continue; // no answer: writes stream
        }
        case 'Q':
        case 'Y':
            if (put_failure) {
                r = tl::unexpected(*put_failure);
                put_failure.reset();
            } else if (op == 'Y') {
                r = done(local->sync());
            }
            break;
        case 'G': {
            if (!get_name(b, name)) {
                r = fail("a malformed read request");
                break;
            }
            auto g = local->get(name);
            if (!g)
                r = tl::unexpected(g.error());
            else
                r = *g ? std::string(1, '\1') + **g : std::string(1, '\0');
            break;
        }
        case 'R': {
            std::uint64_t off = 0;
            std::uint32_t len = 0;
            if (!get_name(b, name) || b.size() != 12) {
                r = fail("a malformed read request");
                break;
            }
            std::memcpy(&off, b.data(), 8);
            std::memcpy(&len, b.data() + 8, 4);
            if (len > k_max_frame - 16) {
                r = fail("a read of " + std::to_string(len) + " bytes is refused");
                break;
            }
            r = local->get_range(name, off, len);
            break;
        }
        case 'S': {
            std::string folder(b);
            if (folder != "data" && folder != "index" && folder != "trees" &&
                folder != "snapshots" && folder != "keys") {
                r = fail("no folder '" + folder + "' in a repository");
                break;
            }
            auto l = local->list(folder);
            if (!l) {
                r = tl::unexpected(l.error());
                break;
            }
            json out = json::array();
            for (const auto &e : *l)
                out.push_back({e.name, e.size});
            r = out.dump();
            break;
        }
        case 'D':
            if (append_only)
                r = refused("delete");
            else if (!get_name(b, name))
                r = fail("a malformed remove request");
            else
                r = done(local->remove(name));
            break;
        case 'L':
            r = done(local->lock(!b.empty() && b[0] != 0));
            break;
        case 'C': {
            if (append_only) {
                r = refused("create a repository");
                break;
            }
            auto j = json::parse(b, nullptr, false);
            std::vector<std::pair<std::string, std::string>> files;
            bool ok = j.is_array();
            for (const auto &e : ok ? j : json::array()) {
                ok = ok && e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string();
                if (ok) files.push_back({e[0].get<std::string>(), e[1].get<std::string>()});
            }
            r = ok ? done(local->create(files)) : fail("a malformed create request");
            break;
        }
        default:
            (void)answer(fail(std::string("unknown request '") + op + "'"));
            return 1;
        }
        if (!answer(r)) return 1;
    }
}

} // namespace berth::store
