#include "store/repository.hpp"

#include "core/paths.hpp"
#include "store/compress.hpp"
#include "store/save.hpp" // cache_dir
#include "util/crash.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp" // random_hex (getrandom): pack names, repository ids
#include "util/strings.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <set>
#include <unistd.h>

namespace berth::store {

namespace stdfs = std::filesystem;

namespace {

// Packs of about 32 MiB: few files for the file system, small enough to write often.
// BERTH_PACK_BYTES overrides it (tests use small packs to crash between them).
std::size_t pack_target() {
    static const std::size_t v = [] {
        const char *e = std::getenv("BERTH_PACK_BYTES");
        return e && std::atol(e) > 0 ? static_cast<std::size_t>(std::atol(e))
                                     : std::size_t(32) << 20;
    }();
    return v;
}
constexpr char k_idx_magic[] = "BIDX1\n";
constexpr std::size_t k_idx_entry = 32 + 8 + 4 + 4 + 1;

template <class T> void put(std::string &out, T v) {
    out.append(reinterpret_cast<const char *>(&v), sizeof v);
}

std::string pack_name(const std::string &pack_id) {
    return "data/" + pack_id.substr(0, 2) + "/" + pack_id;
}

// What a sealed chunk is bound to: its id, encoding and length.
std::string chunk_aad(const ChunkId &id, std::uint8_t flags, std::uint32_t raw_len) {
    std::string aad(reinterpret_cast<const char *>(id.data()), 32);
    aad += static_cast<char>(flags);
    put(aad, raw_len);
    return aad;
}

struct Config {
    int version = 1;
    std::string id;
    ChunkerParams chunker;
    std::string check; // version 2: hex of the sealed marker
};

std::string check_plain(const std::string &id) {
    return "berth repository " + id;
}

// The repository's parameters, validated: a damaged or crafted config is an error naming the
// file, never a chunker that spins or a huge allocation.
Result<Config> read_config(const std::string &where, const std::string &text) {
    Config c;
    auto bad = [&](const std::string &why) {
        return fail("repository config " + where + "/config.json is damaged: " + why,
                    "restore it from a copy; berth will not guess its parameters");
    };
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_object()) return bad("not a JSON object");
    if (!j.contains("version") || !j["version"].is_number_integer()) return bad("no version");
    auto v = j["version"].get<long long>();
    if (v != 1 && v != 2)
        return fail("repository " + where + " has format version " + j["version"].dump(),
                    "upgrade berth");
    c.version = static_cast<int>(v);
    if (!j.contains("id") || !j["id"].is_string() || !is_hex(j["id"].get<std::string>(), 32))
        return bad("bad id");
    c.id = j["id"].get<std::string>();
    if (!j.contains("chunker") || !j["chunker"].is_object()) return bad("no chunker");
    const auto &ch = j["chunker"];
    for (const char *k : {"min", "avg", "max"})
        if (!ch.contains(k) || !ch[k].is_number_unsigned()) return bad(std::string("chunker ") + k);
    c.chunker = {ch["min"].get<std::size_t>(), ch["avg"].get<std::size_t>(),
                 ch["max"].get<std::size_t>()};
    if (c.chunker.min < 4096 || c.chunker.min > c.chunker.avg || c.chunker.avg > c.chunker.max ||
        c.chunker.max > k_max_chunk || (c.chunker.avg & (c.chunker.avg - 1)) != 0)
        return bad("chunker sizes must be 4 KiB <= min <= avg <= max <= 64 MiB, avg a power of 2");
    if (c.version == 2) {
        if (j.value("encryption", "") != "aes-256-gcm") return bad("unknown encryption");
        c.check = j.value("check", "");
        if (c.check.empty() || c.check.size() > 512 ||
            c.check.find_first_not_of("0123456789abcdef") != std::string::npos ||
            c.check.size() % 2)
            return bad("no key check");
    }
    return c;
}

std::string unhex_str(const std::string &h) {
    std::string out(h.size() / 2, '\0');
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = static_cast<char>(std::stoi(h.substr(2 * i, 2), nullptr, 16));
    return out;
}

bool key_opens(const MasterKey &k, const Config &c) {
    auto opened = Sealer(k.enc).open(unhex_str(c.check), "config " + c.id);
    return opened && *opened == check_plain(c.id);
}

stdfs::path key_file_path(const KeyOptions &o, const std::string &repo_id) {
    if (!o.key_file.empty()) return o.key_file;
    if (const char *e = std::getenv("BERTH_REPO_KEY_FILE"); e && *e) return e;
    return default_key_file(repo_id);
}

Result<> write_key_file(const stdfs::path &p, const std::string &repo_id, const MasterKey &k) {
    std::error_code ec;
    if (stdfs::exists(p, ec))
        return fail("key file " + p.string() + " exists already; berth never replaces a key",
                    "move it away or name another file");
    BERTH_TRY(fs::make_dirs(p.parent_path(), 0700));
    auto j = nlohmann::json::parse(k.to_json());
    j["repo"] = repo_id;
    std::string text = j.dump(2) + "\n";
    auto w = fs::write_file_atomic(p, text, 0600);
    OPENSSL_cleanse(text.data(), text.size());
    return w;
}

} // namespace

stdfs::path default_repo() {
    return paths::data_home() / "berth" / "repo";
}

stdfs::path default_key_file(const std::string &repo_id) {
    return paths::config_home() / "berth" / "repo-keys" / (repo_id + ".json");
}

Repository::~Repository() {
    if (m_master) {
        OPENSSL_cleanse(m_master->enc.data(), 32);
        OPENSSL_cleanse(m_master->mac.data(), 32);
    }
}

Result<std::unique_ptr<Repository>> Repository::open(const stdfs::path &root, bool create,
                                                     const KeyOptions &keys) {
    return open(local_backend(root), create, keys);
}

Result<std::unique_ptr<Repository>> Repository::open(std::unique_ptr<Backend> backend, bool create,
                                                     const KeyOptions &keys) {
    std::unique_ptr<Repository> r(new Repository());
    r->m_backend = std::move(backend);
    std::string where = r->m_backend->location();
    auto cfg_text = r->m_backend->get("config.json");
    if (!cfg_text) return tl::unexpected(cfg_text.error());
    if (!*cfg_text) {
        if (!create)
            return fail("no berth repository at " + where,
                        "save something to it first, or pass --repo DIR");
        std::string id = random_hex(16);
        ChunkerParams ch;
        nlohmann::json j{{"version", 1},
                         {"id", id},
                         {"chunker", {{"min", ch.min}, {"avg", ch.avg}, {"max", ch.max}}}};
        std::vector<std::pair<std::string, std::string>> files;
        std::optional<stdfs::path> new_key_file;
        if (keys.encrypt) {
            MasterKey mk = keys.key ? *keys.key : MasterKey::random();
            j["version"] = 2;
            j["encryption"] = "aes-256-gcm";
            auto sealed = Sealer(mk.enc).seal(check_plain(id), "config " + id);
            j["check"] =
                str::hex(reinterpret_cast<const unsigned char *>(sealed.data()), sealed.size());
            std::optional<std::string> pass;
            if (keys.passphrase && !keys.key) {
                auto p = keys.passphrase(true);
                if (!p) return tl::unexpected(p.error());
                pass = *p;
            }
            if (pass) {
                auto entry = wrap_master_key(mk, *pass);
                OPENSSL_cleanse(pass->data(), pass->size());
                if (!entry) return tl::unexpected(entry.error());
                files.push_back({"keys/" + random_hex(8), *entry});
                if (keys.created_key) *keys.created_key = "passphrase";
            } else if (!keys.key) {
                // The key is on disk before the repository exists: never a repository nobody
                // can open.
                new_key_file = key_file_path(keys, id);
                BERTH_TRY(write_key_file(*new_key_file, id, mk));
                if (keys.created_key) *keys.created_key = new_key_file->string();
            }
        }
        files.push_back({"config.json", j.dump(2) + "\n"});
        auto made = r->m_backend->create(files);
        cfg_text = r->m_backend->get("config.json");
        if (!cfg_text) return tl::unexpected(cfg_text.error());
        auto theirs = *cfg_text ? read_config(where, **cfg_text) : Result<Config>();
        if (new_key_file && (!made || !*cfg_text || !theirs || theirs->id != id)) {
            // Another berth created it first (or creation failed): this key opens nothing.
            std::error_code ec;
            stdfs::remove(*new_key_file, ec);
            if (keys.created_key) keys.created_key->clear();
        }
        BERTH_TRY(made);
        if (!*cfg_text) return fail("no berth repository at " + where, "try again");
    }
    auto cfg = read_config(where, **cfg_text);
    if (!cfg) return tl::unexpected(cfg.error());
    r->m_id = cfg->id;
    r->m_chunker = cfg->chunker;
    if (cfg->version == 2) {
        std::optional<MasterKey> mk;
        if (keys.key) {
            if (!key_opens(*keys.key, *cfg))
                return fail("the key given does not open the repository at " + where,
                            "it belongs to another repository");
            mk = keys.key;
            r->m_opened_with = "given";
        }
        auto kf = key_file_path(keys, cfg->id);
        std::error_code ec;
        if (!mk && stdfs::exists(kf, ec)) {
            auto text = fs::read_file(kf);
            if (!text) return tl::unexpected(text.error());
            auto k = MasterKey::from_json(*text);
            OPENSSL_cleanse(text->data(), text->size());
            if (!k || !key_opens(*k, *cfg))
                return fail("key file " + kf.string() + " does not open the repository at " + where,
                            "it belongs to another repository, or is damaged");
            mk = *k;
            r->m_opened_with = kf.string();
        }
        if (!mk) {
            auto entries = r->m_backend->list("keys");
            if (!entries) return tl::unexpected(entries.error());
            std::sort(entries->begin(), entries->end(),
                      [](const ListedFile &a, const ListedFile &b) { return a.name < b.name; });
            std::vector<std::string> texts;
            std::vector<std::string> names;
            for (const auto &e : *entries) {
                if (!valid_repo_name(e.name) || e.size > 65536) continue;
                auto t = r->m_backend->get(e.name);
                if (t && *t) {
                    texts.push_back(**t);
                    names.push_back(e.name);
                }
            }
            if (texts.empty())
                return fail("the repository at " + where +
                                " is encrypted, and its key is not on this machine",
                            "copy its key file to " + kf.string() +
                                " (or set BERTH_REPO_KEY_FILE)");
            std::optional<std::string> pass;
            if (keys.passphrase) {
                auto p = keys.passphrase(false);
                if (!p) return tl::unexpected(p.error());
                pass = *p;
            }
            if (!pass)
                return fail("the repository at " + where + " is encrypted with a passphrase",
                            "set BERTH_REPO_PASSWORD_FILE (or BERTH_REPO_PASSWORD, or "
                            "BERTH_REPO_PASSWORD_COMMAND), or run berth on a terminal to be asked",
                            5);
            for (std::size_t i = 0; i < texts.size() && !mk; ++i) {
                auto k = unwrap_master_key(texts[i], *pass);
                if (k && key_opens(*k, *cfg)) {
                    mk = *k;
                    r->m_opened_with = names[i];
                }
            }
            OPENSSL_cleanse(pass->data(), pass->size());
            if (!mk)
                return fail("wrong passphrase for the repository at " + where,
                            "nothing was read or written; check BERTH_REPO_PASSWORD_FILE", 5);
        }
        r->m_master = *mk;
        r->m_sealer.emplace(mk->enc);
        r->m_ids = IdHasher(mk->mac);
    }
    // Over a network, durable every 64 MiB: a cut link is likelier than a crash, and a save
    // after one resends little.
    if (!r->m_backend->local_root()) r->m_batch_packs = 2;
    BERTH_TRY(r->load_index());
    return r;
}

Result<std::string> Repository::seal_file(std::string_view plain, const std::string &name) const {
    if (!m_sealer) return std::string(plain);
    return m_sealer->seal(plain, name);
}

Result<std::string> Repository::open_file(std::string_view stored, const std::string &name) const {
    if (!m_sealer) return std::string(stored);
    auto r = m_sealer->open(stored, name);
    if (!r) return fail(name + " is damaged: " + r.error().what, "run `berth verify`");
    return r;
}

Result<> Repository::load_index() {
    auto listed = m_backend->list("index");
    if (!listed) return tl::unexpected(listed.error());
    std::sort(listed->begin(), listed->end(),
              [](const ListedFile &a, const ListedFile &b) { return a.name < b.name; });
    // Index files never change (named by their pack): one fetched from a host is kept in a
    // cache here, so opening a remote repository costs one listing, not a download per pack.
    std::optional<stdfs::path> cache;
    if (!m_backend->local_root()) cache = cache_dir() / "index" / m_id;
    // A damaged index is set aside and reported (verify, prune), not fatal: its chunks are
    // simply unknown, so a save sends them again.
    for (const auto &f : *listed) {
        if (f.name.find(".berth-tmp-") != std::string::npos) continue;
        std::string why;
        std::string pack = f.name.substr(6, 64);
        Result<std::optional<std::string>> bytes = std::optional<std::string>();
        if (!valid_repo_name(f.name)) {
            why = "its name is not a pack id";
        } else {
            std::error_code ec;
            auto cached = cache ? *cache / (pack + ".idx") : stdfs::path();
            if (cache && stdfs::file_size(cached, ec) == f.size && !ec) {
                auto t = fs::read_file(cached);
                if (t) bytes = std::optional<std::string>(std::move(*t));
            }
            if (!*bytes) {
                bytes = m_backend->get(f.name);
                if (cache && bytes && *bytes) {
                    (void)fs::make_dirs(*cache, 0700);
                    (void)fs::write_file_atomic(cached, **bytes, 0600, false);
                }
            }
            if (!bytes)
                why = bytes.error().what;
            else if (!*bytes)
                why = "it vanished";
        }
        std::string plain;
        if (why.empty()) {
            auto opened = open_file(**bytes, f.name);
            if (!opened)
                why = "it does not open with this repository's key";
            else
                plain = std::move(*opened);
        }
        if (why.empty() && (plain.size() < sizeof k_idx_magic - 1 ||
                            plain.compare(0, sizeof k_idx_magic - 1, k_idx_magic) != 0 ||
                            (plain.size() - (sizeof k_idx_magic - 1)) % k_idx_entry != 0))
            why = "not a berth index";
        std::vector<std::pair<ChunkId, Location>> entries;
        auto packno = static_cast<std::uint32_t>(m_packs.size());
        for (std::size_t p = sizeof k_idx_magic - 1; why.empty() && p < plain.size();
             p += k_idx_entry) {
            ChunkId id;
            Location l;
            l.pack = packno;
            std::memcpy(id.data(), plain.data() + p, 32);
            std::memcpy(&l.offset, plain.data() + p + 32, 8);
            std::memcpy(&l.stored_len, plain.data() + p + 40, 4);
            std::memcpy(&l.raw_len, plain.data() + p + 44, 4);
            std::memcpy(&l.flags, plain.data() + p + 48, 1);
            if (l.raw_len > k_max_chunk || l.stored_len > k_max_chunk + (1u << 20) || l.flags > 1 ||
                l.offset > (std::uint64_t(1) << 40))
                why = "an entry is out of bounds";
            entries.emplace_back(id, l);
        }
        if (!why.empty()) {
            m_damaged.push_back("index file " + location() + "/" + f.name + " is damaged (" + why +
                                ")");
            continue;
        }
        m_packs.push_back(pack);
        for (const auto &[id, l] : entries)
            m_index.emplace(id, l);
    }
    return {};
}

std::vector<ChunkId> Repository::chunk_ids() const {
    std::vector<ChunkId> out;
    out.reserve(m_index.size());
    for (const auto &[id, l] : m_index)
        out.push_back(id);
    return out;
}

Result<> Repository::add(const ChunkId &id, std::uint32_t raw_len, std::uint8_t flags,
                         std::string_view stored) {
    if (has(id)) return {}; // callers (the sinks) skip what this save already added
    std::uint64_t offset = m_pack_buf.size();
    if (m_sealer)
        m_sealer->seal_append(stored, chunk_aad(id, flags, raw_len), m_pack_buf);
    else
        m_pack_buf.append(stored);
    m_pending.push_back(
        {id, offset, static_cast<std::uint32_t>(m_pack_buf.size() - offset), raw_len, flags});
    if (m_pack_buf.size() >= pack_target()) return flush();
    return {};
}

Result<std::size_t> Repository::add_plain(const ChunkId &id, std::string_view raw) {
    if (has(id)) return std::size_t(0);
    if (m_pack_buf.capacity() < pack_target())
        m_pack_buf.reserve(pack_target() + (4u << 20)); // one buffer for every pack: no faults
    std::uint64_t offset = m_pack_buf.size();
    std::uint8_t flags = 0;
    if (m_sealer) {
        m_scratch.clear();
        compress_append(raw, flags, m_scratch);
        m_sealer->seal_append(
            m_scratch, chunk_aad(id, flags, static_cast<std::uint32_t>(raw.size())), m_pack_buf);
    } else {
        compress_append(raw, flags, m_pack_buf);
    }
    std::size_t stored = m_pack_buf.size() - offset;
    m_pending.push_back({id, offset, static_cast<std::uint32_t>(stored),
                         static_cast<std::uint32_t>(raw.size()), flags});
    if (m_pack_buf.size() >= pack_target()) BERTH_TRY(flush());
    return stored;
}

Result<> Repository::flush() {
    if (m_pending.empty()) return {};
    // A random name: hashing 32 MiB again would cost a second pass over everything saved, and
    // every chunk in it is checked against its own id on every read anyway.
    std::string pack_id = random_hex(32);
    BERTH_TRY(m_backend->put(pack_name(pack_id), m_pack_buf, false));
    crash_point("pack-written"); // a pack without its index: invisible, pruned later
    m_written += m_pack_buf.size();
    m_unsynced.push_back({pack_id, std::move(m_pending)});
    m_pack_buf.clear();
    m_pending.clear();
    if (m_unsynced.size() >= m_batch_packs) return sync_batch();
    return {};
}

// One sync makes the batch's packs durable; only then are their indexes written, so a durable
// index never names data that is not stored.
Result<> Repository::sync_batch() {
    if (m_unsynced.empty()) return {};
    BERTH_TRY(m_backend->sync());
    for (auto &u : m_unsynced) {
        std::string idx(k_idx_magic);
        for (const auto &p : u.entries) {
            idx.append(reinterpret_cast<const char *>(p.id.data()), 32);
            put(idx, p.offset);
            put(idx, p.stored_len);
            put(idx, p.raw_len);
            put(idx, p.flags);
        }
        std::string name = "index/" + u.pack_id + ".idx";
        auto sealed = seal_file(idx, name);
        if (!sealed) return tl::unexpected(sealed.error());
        BERTH_TRY(m_backend->put(name, *sealed, false));
        auto pack = static_cast<std::uint32_t>(m_packs.size());
        m_packs.push_back(u.pack_id);
        for (const auto &p : u.entries)
            m_index.emplace(p.id, Location{pack, p.offset, p.stored_len, p.raw_len, p.flags});
        crash_point("pack-indexed");
    }
    m_unsynced.clear();
    return {};
}

Result<> Repository::commit() {
    BERTH_TRY(flush());
    BERTH_TRY(sync_batch());
    return m_backend->sync(); // the indexes too, before a tree or snapshot names their chunks
}

Result<std::pair<std::uint8_t, std::string>> Repository::read_stored(const ChunkId &id,
                                                                     std::uint32_t &raw_len) {
    std::string_view sealed_view;
    std::string fetched;
    std::uint8_t flags = 0;
    auto it = m_index.find(id);
    if (it != m_index.end()) {
        const Location &l = it->second;
        auto b = read_planned(id, l);
        if (!b)
            return fail("pack " + m_packs[l.pack].substr(0, 16) + ": " + b.error().what,
                        "run `berth verify`");
        fetched = std::move(*b);
        sealed_view = fetched;
        raw_len = l.raw_len;
        flags = l.flags;
    } else {
        const Pending *p = nullptr; // written by this save, not yet in a pack file
        for (const auto &q : m_pending)
            if (q.id == id) p = &q;
        if (!p)
            return fail("chunk " + to_hex(id).substr(0, 16) + " is missing from the repository",
                        "run `berth verify`");
        sealed_view = std::string_view(m_pack_buf).substr(p->offset, p->stored_len);
        raw_len = p->raw_len;
        flags = p->flags;
    }
    if (!m_sealer) return std::make_pair(flags, std::string(sealed_view));
    auto opened = m_sealer->open(sealed_view, chunk_aad(id, flags, raw_len));
    if (!opened)
        return fail("chunk " + to_hex(id).substr(0, 16) + " in " + location() + " is damaged (" +
                        opened.error().what + ")",
                    "run `berth verify`");
    return std::make_pair(flags, std::move(*opened));
}

Result<std::string> Repository::read_planned(const ChunkId &id, const Location &l) {
    auto name = pack_name(m_packs[l.pack]);
    if (m_backend->local_root()) // pread from the page cache: nothing to gain
        return m_backend->get_range(name, l.offset, l.stored_len);
    bool planned = m_plan_pos < m_plan.size() && m_plan[m_plan_pos] == id;
    if (planned) ++m_plan_pos;
    if (m_window_pack == l.pack && l.offset >= m_window_start &&
        l.offset + l.stored_len <= m_window_start + m_window.size())
        return m_window.substr(l.offset - m_window_start, l.stored_len);
    std::uint64_t end = l.offset + l.stored_len;
    // The planned chunks that follow, while they lie right after this one in the same pack.
    constexpr std::uint64_t k_window = 8u << 20;
    for (std::size_t j = m_plan_pos; planned && j < m_plan.size(); ++j) {
        auto it = m_index.find(m_plan[j]);
        if (it == m_index.end() || it->second.pack != l.pack) break;
        const auto &n = it->second;
        if (n.offset >= l.offset && n.offset + n.stored_len <= end) continue; // inside already
        if (n.offset != end || n.offset + n.stored_len - l.offset > k_window) break;
        end = n.offset + n.stored_len;
    }
    auto b = m_backend->get_range(name, l.offset, static_cast<std::uint32_t>(end - l.offset));
    if (!b) return b;
    m_window_pack = l.pack;
    m_window_start = l.offset;
    m_window = std::move(*b);
    return m_window.substr(0, l.stored_len);
}

Result<std::string> Repository::read(const ChunkId &id) {
    std::uint32_t raw_len = 0;
    auto stored = read_stored(id, raw_len);
    if (!stored) return tl::unexpected(stored.error());
    auto raw = decompress(stored->second, stored->first, raw_len);
    if (!raw || m_ids(raw->data(), raw->size()) != id)
        return fail("chunk " + to_hex(id).substr(0, 16) + " in " + location() + " is damaged",
                    "the repository's disk corrupted it; run `berth verify`");
    return raw;
}

Result<std::string> Repository::put_tree(const Tree &t) {
    std::string bytes = serialize(t);
    std::string id = to_hex(m_ids(bytes));
    if (!m_trees) {
        auto listed = m_backend->list("trees");
        if (!listed) return tl::unexpected(listed.error());
        m_trees.emplace();
        for (const auto &f : *listed)
            if (valid_repo_name(f.name)) m_trees->insert(f.name.substr(6));
    }
    if (m_trees->count(id)) return id; // an unchanged workspace: nothing to store
    std::uint8_t flags = 0;
    std::string stored = compress(bytes, flags);
    std::string file(1, static_cast<char>(flags));
    file += stored;
    put(file, static_cast<std::uint64_t>(bytes.size()));
    std::string name = "trees/" + id;
    auto sealed = seal_file(file, name);
    if (!sealed) return tl::unexpected(sealed.error());
    BERTH_TRY(m_backend->put(name, *sealed, true));
    BERTH_TRY(m_backend->check());
    m_trees->insert(id);
    return id;
}

Result<Tree> Repository::get_tree(const std::string &id) {
    if (id.size() != 64 || id.find_first_not_of("0123456789abcdef") != std::string::npos)
        return fail("bad tree id '" + id + "'");
    std::string name = "trees/" + id;
    auto got = m_backend->get(name);
    if (!got)
        return fail("tree " + id.substr(0, 16) + ": " + got.error().what, "run `berth verify`");
    if (!*got) return fail("tree " + id.substr(0, 16) + " is missing", "run `berth verify`");
    auto file = open_file(**got, name);
    if (!file) return fail("tree " + id.substr(0, 16) + " is damaged", "run `berth verify`");
    if (file->size() < 9) return fail("tree " + id.substr(0, 16) + " is damaged");
    std::uint64_t raw_len;
    std::memcpy(&raw_len, file->data() + file->size() - 8, 8);
    if (raw_len > k_max_tree) return fail("tree " + id.substr(0, 16) + " is damaged (size)");
    auto bytes = decompress(std::string_view(*file).substr(1, file->size() - 9),
                            static_cast<std::uint8_t>((*file)[0]),
                            static_cast<std::size_t>(raw_len), k_max_tree);
    if (!bytes)
        return fail("tree " + id.substr(0, 16) + " is damaged (" + bytes.error().what + ")",
                    "run `berth verify`");
    if (to_hex(m_ids(*bytes)) != id)
        return fail("tree " + id.substr(0, 16) + " is damaged", "run `berth verify`");
    auto t = parse_tree(*bytes);
    if (!t) return fail("tree " + id.substr(0, 16) + ": " + t.error().what, "run `berth verify`");
    if (m_trees) m_trees->insert(id);
    return t;
}

Result<> Repository::put_snapshot(const Snapshot &s) {
    crash_point("before-snapshot");
    std::string name = "snapshots/" + s.id + ".json";
    auto sealed = seal_file(snapshot_json(s), name);
    if (!sealed) return tl::unexpected(sealed.error());
    BERTH_TRY(m_backend->put(name, *sealed, true));
    return m_backend->check();
}

SnapshotScan Repository::scan_snapshots() {
    SnapshotScan out;
    auto listed = m_backend->list("snapshots");
    if (!listed) {
        out.damaged.push_back({"", location() + "/snapshots: " + listed.error().what});
        return out;
    }
    for (const auto &f : *listed) {
        std::string name = f.name.substr(10);
        if (name.size() < 6 || name.compare(name.size() - 5, 5, ".json") != 0) continue;
        if (name.find(".berth-tmp") != std::string::npos) continue;
        std::string stem = name.substr(0, name.size() - 5);
        std::string shown = location() + "/" + f.name;
        if (!is_hex(stem, 16)) {
            out.damaged.push_back(
                {stem, "snapshot file " + shown + " does not have a snapshot id for a name"});
            continue;
        }
        Result<Snapshot> s = fail("it vanished");
        if (f.size > (1u << 20)) {
            s = fail("it is too large to be a snapshot");
        } else {
            auto text = m_backend->get(f.name);
            if (!text)
                s = tl::unexpected(text.error());
            else if (*text) {
                auto plain = open_file(**text, f.name);
                s = plain ? parse_snapshot(*plain)
                          : Result<Snapshot>(fail("it does not open with this repository's key"));
            }
        }
        if (s && s->id != stem)
            s = fail("snapshot file is damaged: it says it is " + s->id.substr(0, 16));
        if (!s) {
            out.damaged.push_back(
                {stem, "snapshot " + stem + " (" + shown + "): " + s.error().what});
            continue;
        }
        out.good.push_back(*s);
    }
    std::sort(out.good.begin(), out.good.end(), [](const Snapshot &a, const Snapshot &b) {
        return a.time < b.time || (a.time == b.time && a.id < b.id);
    });
    return out;
}

Result<std::vector<Snapshot>> Repository::snapshots() {
    auto scan = scan_snapshots();
    if (!scan.damaged.empty())
        return fail(scan.damaged.front().second,
                    "`berth verify` lists the damage; `berth forget " +
                        (scan.damaged.front().first.empty() ? std::string("ID")
                                                            : scan.damaged.front().first) +
                        "` removes a damaged snapshot");
    return scan.good;
}

Result<Snapshot> Repository::find_snapshot(const std::string &ref) {
    if (ref == "latest") {
        // The newest snapshot cannot be known while one is unreadable: refuse, never restore
        // an older one quietly.
        auto all = snapshots();
        if (!all) return tl::unexpected(all.error());
        if (all->empty())
            return fail("the repository has no snapshots", "save one with `berth save`");
        return all->back();
    }
    if (ref.empty() || ref.size() > 16 ||
        ref.find_first_not_of("0123456789abcdef") != std::string::npos)
        return fail("bad snapshot id '" + ref + "'", "ids are hex; see `berth snapshots`", 2);
    auto scan = scan_snapshots();
    std::vector<Snapshot> hits;
    for (const auto &s : scan.good)
        if (s.id.rfind(ref, 0) == 0) hits.push_back(s);
    for (const auto &[id, why] : scan.damaged)
        if (!id.empty() && id.rfind(ref, 0) == 0)
            return fail(why, "`berth forget " + id + "` removes it");
    if (hits.size() == 1) return hits[0];
    if (hits.empty())
        return fail("no snapshot '" + ref + "' in " + location(), "see `berth snapshots`");
    return fail("snapshot '" + ref + "' is ambiguous (" + std::to_string(hits.size()) + " match)",
                "give more of its id");
}

Result<std::string> Repository::forget(const std::string &ref) {
    // By the file's own name (validated hex), damaged snapshots included; never by an id read
    // from inside a file.
    if (ref.empty() || ref.size() > 16 ||
        ref.find_first_not_of("0123456789abcdef") != std::string::npos)
        return fail("bad snapshot id '" + ref + "'", "ids are hex; see `berth snapshots`", 2);
    auto scan = scan_snapshots();
    std::vector<std::string> hits;
    for (const auto &s : scan.good)
        if (s.id.rfind(ref, 0) == 0) hits.push_back(s.id);
    for (const auto &[id, why] : scan.damaged)
        if (!id.empty() && id.rfind(ref, 0) == 0) hits.push_back(id);
    if (hits.empty())
        return fail("no snapshot '" + ref + "' in " + location(), "see `berth snapshots`");
    if (hits.size() > 1)
        return fail("snapshot '" + ref + "' is ambiguous (" + std::to_string(hits.size()) +
                        " match)",
                    "give more of its id");
    BERTH_TRY(m_backend->remove("snapshots/" + hits[0] + ".json"));
    BERTH_TRY(m_backend->sync());
    return hits[0];
}

Result<VerifyReport> Repository::verify(const std::function<void(std::uint64_t)> &progress) {
    VerifyReport rep;
    auto scan = scan_snapshots();
    for (const auto &d : scan.damaged)
        rep.problems.push_back(d.second);
    for (const auto &d : m_damaged)
        rep.problems.push_back(d);
    // The host's own index files, not the copies cached here.
    if (!m_backend->local_root())
        if (auto listed = m_backend->list("index"))
            for (const auto &f : *listed) {
                if (!valid_repo_name(f.name)) continue;
                auto bytes = m_backend->get(f.name);
                if (!bytes || !*bytes || !open_file(**bytes, f.name))
                    rep.problems.push_back("index file " + location() + "/" + f.name +
                                           " is damaged (it does not open with this "
                                           "repository's key)");
            }
    rep.snapshots = scan.good.size();
    std::set<std::string> trees;
    for (const auto &s : scan.good)
        trees.insert(s.tree);
    for (const auto &t : trees) {
        auto tree = get_tree(t);
        if (!tree) {
            rep.problems.push_back(tree.error().what);
            continue;
        }
        ++rep.trees;
        for (const auto &e : tree->entries)
            for (const auto &c : e.chunks)
                if (!has(c))
                    rep.problems.push_back("chunk " + to_hex(c).substr(0, 16) + " of " + e.path +
                                           " is missing");
    }
    // In pack order, so a remote or local pack is read front to back.
    std::vector<std::pair<ChunkId, Location>> all(m_index.begin(), m_index.end());
    std::sort(all.begin(), all.end(), [](const auto &a, const auto &b) {
        return a.second.pack < b.second.pack ||
               (a.second.pack == b.second.pack && a.second.offset < b.second.offset);
    });
    std::vector<ChunkId> order;
    for (const auto &[id, l] : all)
        order.push_back(id);
    plan_reads(std::move(order));
    for (const auto &[id, l] : all) {
        auto raw = read(id);
        if (!raw)
            rep.problems.push_back(raw.error().what);
        else
            rep.bytes += raw->size();
        ++rep.chunks;
        if (progress) progress(l.raw_len);
    }
    return rep;
}

Result<PruneReport> Repository::prune() {
    PruneReport rep;
    if (m_backend->append_only())
        return fail("this repository is append-only for this key: it cannot prune",
                    "prune from a machine that holds the owner's key");
    // Nothing is deleted while anything is unreadable: a damaged snapshot's data looks unused,
    // and a damaged index's pack looks like an orphan.
    if (!m_damaged.empty())
        return fail("cannot prune: " + m_damaged.front(),
                    "nothing was deleted; restore the file or remove it by hand after `berth "
                    "verify`");
    auto snaps = snapshots();
    if (!snaps)
        return fail("cannot prune: " + snaps.error().what,
                    "nothing was deleted; " + snaps.error().fix);
    std::set<ChunkId> used;
    std::set<std::string> used_trees;
    for (const auto &s : *snaps) {
        auto t = get_tree(s.tree);
        if (!t)
            return fail("cannot prune: " + t.error().what,
                        "nothing was deleted; run `berth verify`");
        used_trees.insert(s.tree);
        for (const auto &e : t->entries)
            used.insert(e.chunks.begin(), e.chunks.end());
    }
    auto data = m_backend->list("data");
    if (!data) return tl::unexpected(data.error());
    std::unordered_map<std::string, std::uint64_t> sizes;
    for (const auto &f : *data)
        sizes[f.name] = f.size;
    std::vector<std::uint64_t> live(m_packs.size(), 0), dead(m_packs.size(), 0);
    for (const auto &[id, l] : m_index)
        (used.count(id) ? live : dead)[l.pack] += l.stored_len;
    for (std::size_t p = 0; p < m_packs.size(); ++p) {
        if (live[p] == 0) {
            // The index goes first: a pack without an index is invisible and harmless.
            BERTH_TRY(m_backend->remove("index/" + m_packs[p] + ".idx"));
            rep.bytes_freed += sizes[pack_name(m_packs[p])];
            BERTH_TRY(m_backend->remove(pack_name(m_packs[p])));
            ++rep.packs_removed;
        } else {
            rep.unused_bytes_kept += dead[p];
        }
    }
    // Packs no index names (a save killed between the two writes) and temp files.
    std::set<std::string> indexed;
    for (const auto &p : m_packs)
        indexed.insert(pack_name(p));
    for (const auto &f : *data) {
        bool temp = f.name.find(".berth-tmp-") != std::string::npos;
        if (temp || !indexed.count(f.name)) {
            rep.bytes_freed += f.size;
            BERTH_TRY(m_backend->remove(f.name));
            ++rep.orphan_packs;
        }
    }
    auto trees = m_backend->list("trees");
    if (trees)
        for (const auto &f : *trees)
            if (!used_trees.count(f.name.substr(6))) BERTH_TRY(m_backend->remove(f.name));
    BERTH_TRY(m_backend->sync());
    m_index.clear();
    m_packs.clear();
    m_damaged.clear();
    m_trees.reset();
    m_plan.clear();
    m_window_pack = UINT32_MAX;
    m_window.clear();
    BERTH_TRY(load_index());
    return rep;
}

Result<std::string> Repository::add_passphrase(const std::string &passphrase) {
    if (!m_master)
        return fail("the repository at " + location() + " is not encrypted",
                    "a passphrase protects only an encrypted repository");
    auto entry = wrap_master_key(*m_master, passphrase);
    if (!entry) return tl::unexpected(entry.error());
    std::string name = "keys/" + random_hex(8);
    BERTH_TRY(m_backend->put(name, *entry, true));
    BERTH_TRY(m_backend->sync());
    return name;
}

Result<std::vector<std::string>> Repository::key_ids() {
    auto listed = m_backend->list("keys");
    if (!listed) return tl::unexpected(listed.error());
    std::vector<std::string> out;
    for (const auto &f : *listed)
        if (valid_repo_name(f.name)) out.push_back(f.name);
    std::sort(out.begin(), out.end());
    return out;
}

Result<> Repository::remove_key(const std::string &name) {
    auto ids = key_ids();
    if (!ids) return tl::unexpected(ids.error());
    if (std::find(ids->begin(), ids->end(), name) == ids->end())
        return fail("no key " + name + " in " + location());
    std::error_code ec;
    bool key_file = stdfs::exists(default_key_file(m_id), ec);
    if (ids->size() < 2 && !key_file)
        return fail("that is the repository's last key", "add another first: nothing was removed");
    BERTH_TRY(m_backend->remove(name));
    return m_backend->sync();
}

} // namespace berth::store
