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
    if (n > bytes.size()) return fail("tree object is damaged (entry count)");
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
        if (!r.ok || r.pos + std::size_t(nc) * 32 > bytes.size())
            return fail("tree object is damaged (chunks)");
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
    return j.dump(2) + "\n";
}

Result<Snapshot> parse_snapshot(const std::string &json) {
    try {
        auto j = nlohmann::json::parse(json);
        Snapshot s;
        s.id = j.at("id");
        s.time = j.at("time");
        s.host = j.value("host", "");
        s.source = j.value("source", "");
        s.paths = j.value("paths", std::vector<std::string>{});
        s.tree = j.at("tree");
        s.parent = j.value("parent", "");
        s.files = j.value("files", 0ull);
        s.bytes = j.value("bytes", 0ull);
        s.new_bytes = j.value("new_bytes", 0ull);
        s.stored_bytes = j.value("stored_bytes", 0ull);
        return s;
    } catch (const std::exception &e) {
        return fail(std::string("snapshot file is damaged: ") + e.what());
    }
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
