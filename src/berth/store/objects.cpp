#include "store/objects.hpp"

#include "util/hash.hpp"
#include "util/strings.hpp"

#include <cstring>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>

namespace berth::store {

std::string to_hex(const ChunkId &id) {
    return str::hex(id.data(), id.size());
}

Result<ChunkId> from_hex(const std::string &hex) {
    ChunkId id{};
    if (hex.size() != 64) return fail("bad object id '" + hex + "'");
    for (std::size_t i = 0; i < 32; ++i) {
        auto nib = [&](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            return -1;
        };
        int hi = nib(hex[2 * i]), lo = nib(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return fail("bad object id '" + hex + "'");
        id[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return id;
}

ChunkId sha256_id(const void *data, std::size_t n) {
    ChunkId id{};
    unsigned int len = 0;
    EVP_Digest(data, n, id.data(), &len, EVP_sha256(), nullptr);
    return id;
}

namespace {

template <class T> void put(std::string &out, T v) {
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
}
void put_str(std::string &out, const std::string &s) {
    put<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
    out += s;
}

struct Reader {
    const std::string &b;
    std::size_t pos = 0;
    bool ok = true;
    template <class T> T get() {
        T v{};
        if (pos + sizeof v > b.size()) {
            ok = false;
            return v;
        }
        std::memcpy(&v, b.data() + pos, sizeof v);
        pos += sizeof v;
        return v;
    }
    std::string get_str() {
        auto n = get<std::uint32_t>();
        if (!ok || pos + n > b.size()) {
            ok = false;
            return {};
        }
        std::string s = b.substr(pos, n);
        pos += n;
        return s;
    }
};

constexpr char k_magic[] = "BTREE1\n";

} // namespace

std::string serialize(const Tree &t) {
    std::string out(k_magic);
    put<std::uint64_t>(out, t.entries.size());
    for (const auto &e : t.entries) {
        put_str(out, e.path);
        put<std::uint8_t>(out, static_cast<std::uint8_t>(e.type));
        put(out, e.mode);
        put(out, e.mtime_ns);
        put(out, e.size);
        put(out, e.uid);
        put(out, e.gid);
        put_str(out, e.target);
        put<std::uint32_t>(out, static_cast<std::uint32_t>(e.chunks.size()));
        for (const auto &c : e.chunks)
            out.append(reinterpret_cast<const char *>(c.data()), c.size());
    }
    return out;
}

Result<Tree> parse_tree(const std::string &bytes) {
    if (bytes.compare(0, sizeof k_magic - 1, k_magic) != 0) return fail("not a berth tree object");
    Reader r{bytes, sizeof k_magic - 1};
    auto n = r.get<std::uint64_t>();
    Tree t;
    // Each entry takes at least 41 bytes: a count beyond that is damage, refused before any
    // allocation.
    if (!r.ok || n > bytes.size() / 41) return fail("tree object is damaged (entry count)");
    t.entries.reserve(n);
    for (std::uint64_t i = 0; i < n && r.ok; ++i) {
        Entry e;
        e.path = r.get_str();
        auto type = r.get<std::uint8_t>();
        if (type > 2) return fail("tree object is damaged (entry type)");
        e.type = static_cast<EntryType>(type);
        e.mode = r.get<std::uint32_t>();
        e.mtime_ns = r.get<std::int64_t>();
        e.size = r.get<std::uint64_t>();
        e.uid = r.get<std::uint32_t>();
        e.gid = r.get<std::uint32_t>();
        e.target = r.get_str();
        auto nc = r.get<std::uint32_t>();
        if (!r.ok || std::size_t(nc) > (bytes.size() - r.pos) / 32)
            return fail("tree object is damaged (chunks)");
        if (e.path.size() > 4096 || e.target.size() > 4096)
            return fail("tree object is damaged (a name over 4096 bytes)");
        e.chunks.resize(nc);
        for (auto &c : e.chunks) {
            std::memcpy(c.data(), bytes.data() + r.pos, 32);
            r.pos += 32;
        }
        t.entries.push_back(std::move(e));
    }
    if (!r.ok) return fail("tree object is truncated");
    return t;
}

std::string snapshot_json(const Snapshot &s) {
    nlohmann::json j{{"id", s.id},
                     {"time", s.time},
                     {"host", s.host},
                     {"source", s.source},
                     {"paths", s.paths},
                     {"tree", s.tree},
                     {"parent", s.parent},
                     {"files", s.files},
                     {"bytes", s.bytes},
                     {"new_bytes", s.new_bytes},
                     {"stored_bytes", s.stored_bytes}};
    if (!s.instance.empty()) j["instance"] = s.instance; // saved from a machine:
    if (!s.provider.empty()) j["provider"] = s.provider; // which one, and where it ran
    // Names from disk may not be UTF-8: replaced in this summary (the tree keeps the bytes).
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

bool is_hex(const std::string &s, std::size_t len) {
    return s.size() == len && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

Result<Snapshot> parse_snapshot(const std::string &json) {
    if (json.size() > (1u << 20)) return fail("snapshot file is damaged: over 1 MiB");
    auto j = nlohmann::json::parse(json, nullptr, false);
    if (!j.is_object()) return fail("snapshot file is damaged: not a JSON object");
    auto text = [&](const char *k, bool required, std::string &out) -> Result<> {
        auto it = j.find(k);
        if (it == j.end() || it->is_null()) {
            if (required) return fail(std::string("snapshot file is damaged: no '") + k + "'");
            return {};
        }
        if (!it->is_string())
            return fail(std::string("snapshot file is damaged: '") + k + "' is not text");
        out = it->get<std::string>();
        return {};
    };
    auto count = [&](const char *k) -> std::uint64_t {
        auto it = j.find(k);
        return it != j.end() && it->is_number_unsigned() ? it->get<std::uint64_t>() : 0;
    };
    Snapshot s;
    BERTH_TRY(text("id", true, s.id));
    BERTH_TRY(text("time", true, s.time));
    BERTH_TRY(text("tree", true, s.tree));
    BERTH_TRY(text("host", false, s.host));
    BERTH_TRY(text("source", false, s.source));
    BERTH_TRY(text("parent", false, s.parent));
    BERTH_TRY(text("instance", false, s.instance));
    BERTH_TRY(text("provider", false, s.provider));
    auto plain = [](const std::string &v) {
        return v.size() <= 64 &&
               v.find_first_not_of(
                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
                   std::string::npos;
    };
    if (!plain(s.instance) || !plain(s.provider))
        return fail("snapshot file is damaged: bad instance or provider name");
    if (!is_hex(s.id, 16)) return fail("snapshot file is damaged: bad id");
    if (!is_hex(s.tree, 64)) return fail("snapshot file is damaged: bad tree id");
    if (!s.parent.empty() && !is_hex(s.parent, 16))
        return fail("snapshot file is damaged: bad parent id");
    if (s.time.size() < 20 || s.time.size() > 40) return fail("snapshot file is damaged: bad time");
    if (auto it = j.find("paths"); it != j.end() && it->is_array())
        for (const auto &p : *it)
            if (p.is_string()) s.paths.push_back(p.get<std::string>());
    s.files = count("files");
    s.bytes = count("bytes");
    s.new_bytes = count("new_bytes");
    s.stored_bytes = count("stored_bytes");
    return s;
}

Result<> check_entry_path(const std::string &path) {
    if (path.empty() || path[0] == '/')
        return fail("unsafe path in snapshot: '" + path + "' is absolute or empty",
                    "the repository may be tampered with");
    for (const auto &part : str::split(path, '/'))
        if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string::npos)
            return fail("unsafe path in snapshot: '" + path + "'",
                        "the repository may be tampered with");
    return {};
}

} // namespace berth::store
