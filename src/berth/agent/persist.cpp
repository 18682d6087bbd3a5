#include "agent/persist.hpp"

#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "agent/keys.hpp"
#include "util/fs.hpp"
#include "util/lock.hpp"
#include "util/tree.hpp"

#include <chrono>
#include <sys/stat.h>

namespace berth {

namespace stdfs = std::filesystem;

bool PersistRun::ok() const {
    for (const auto &i : items)
        if (!i.error.empty()) return false;
    return true;
}

const char *state_name(ItemState s) {
    switch (s) {
    case ItemState::linked:
        return "linked";
    case ItemState::not_linked:
        return "not-linked";
    case ItemState::drifted:
        return "drifted";
    case ItemState::foreign_link:
        return "foreign-link";
    case ItemState::dangling:
        return "dangling";
    case ItemState::store_missing:
        return "store-missing";
    }
    return "?";
}

static Result<FileLock> lock_store(const Store &store, std::chrono::milliseconds wait) {
    return FileLock::acquire(store.lock_file(), wait);
}

// A `persist add` killed mid-move left a journal entry for a path not yet in the manifest
// (it is recorded only once it is safely in the store): finish that move and record the path,
// as the user asked. Entries that are not berth's own shape are left for a person to look at.
static void finish_journaled(const Store &store, const stdfs::path &home, Manifest &m,
                             MigrationObserver &obs) {
    std::error_code ec;
    if (!stdfs::is_directory(store.journal_dir(), ec)) return;
    bool changed = false;
    Migrator mig(store, home, obs);
    for (const auto &e : stdfs::directory_iterator(store.journal_dir(), ec)) {
        auto j = nlohmann::json::parse(fs::read_file(e.path()).value_or(""), nullptr, false);
        if (!j.is_object() || !j.contains("path") || !j["path"].is_string() || !j.contains("op") ||
            j["op"] != "link")
            continue;
        std::string rel = j["path"].get<std::string>();
        if (rel.empty() || rel[0] == '/' || rel.find("..") != std::string::npos || m.find(rel) ||
            m.overlapping(rel))
            continue;
        struct stat st {};
        auto sp = store.cfg() / rel, hp = home / rel;
        ItemKind kind = ItemKind::dir;
        if (::lstat(sp.c_str(), &st) == 0 ||
            (::lstat(hp.c_str(), &st) == 0 && !S_ISLNK(st.st_mode)))
            kind = S_ISDIR(st.st_mode) ? ItemKind::dir : ItemKind::file;
        Item item{rel, kind};
        auto r = mig.link(item);
        if (r && r->action != LinkAction::foreign_link) {
            m.items.push_back(item);
            changed = true;
            store.log("finished the interrupted `persist add` of " + rel);
        }
    }
    if (changed) (void)save_manifest(store, m);
}

static PersistRun link_all(const Store &store, const stdfs::path &home, const Manifest &m,
                           MigrationObserver &obs) {
    auto start = std::chrono::steady_clock::now();
    PersistRun run;
    Migrator mig(store, home, obs);
    for (const auto &item : m.items) {
        auto r = mig.link(item);
        ItemOutcome o;
        if (r) {
            o.report = *r;
        } else {
            o.report.path = item.path;
            o.error = r.error().line();
            store.log("error: " + item.path + ": " + o.error);
        }
        run.items.push_back(std::move(o));
    }
    if (m.find(".ssh")) {
        auto fixed = fix_ssh_permissions(store.cfg() / ".ssh");
        if (fixed) run.ssh_fixed = *fixed;
    }
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return run;
}

Result<PersistRun> persist_init(const Store &store, const stdfs::path &home,
                                MigrationObserver &obs) {
    BERTH_TRY(store.prepare());
    auto lock = lock_store(store, std::chrono::milliseconds{0});
    if (!lock) return tl::unexpected(lock.error());
    auto m = load_manifest(store);
    if (!m) return tl::unexpected(m.error());
    for (const auto &d : default_items())
        if (!m->overlapping(d.path)) m->items.push_back(d);
    BERTH_TRY(save_manifest(store, *m));
    store.log("init: " + std::to_string(m->items.size()) + " paths");
    return link_all(store, home, *m, obs);
}

Result<LinkReport> persist_add(const Store &store, const stdfs::path &home,
                               const std::string &given, ItemKind kind, MigrationObserver &obs) {
    auto rel = normalise_item_path(given, home, store);
    if (!rel) return tl::unexpected(rel.error());
    BERTH_TRY(store.prepare());
    auto lock = lock_store(store, std::chrono::milliseconds{0});
    if (!lock) return tl::unexpected(lock.error());
    auto m = load_manifest(store);
    if (!m) return tl::unexpected(m.error());
    if (const Item *o = m->overlapping(*rel); o && o->path != *rel)
        return fail("~/" + *rel + " overlaps ~/" + o->path + ", which is already persisted",
                    "persist one or the other", 2);
    struct stat st {};
    auto hp = home / *rel, sp = store.cfg() / *rel;
    if (::lstat(hp.c_str(), &st) == 0 && !S_ISLNK(st.st_mode))
        kind = S_ISDIR(st.st_mode) ? ItemKind::dir : ItemKind::file;
    else if (::lstat(sp.c_str(), &st) == 0)
        kind = S_ISDIR(st.st_mode) ? ItemKind::dir : ItemKind::file;
    Item item{*rel, kind};
    // Link first: a path is recorded only once it is safely in the store.
    Migrator mig(store, home, obs);
    auto r = mig.link(item);
    if (!r) return r;
    if (r->action == LinkAction::foreign_link)
        return fail("~/" + *rel + " is a symlink to somewhere else (" + r->note + ")",
                    "persist its target, or remove the link first", 2);
    if (!m->find(*rel)) {
        m->items.push_back(item);
        BERTH_TRY(save_manifest(store, *m));
    }
    return r;
}

Result<UnlinkReport> persist_remove(const Store &store, const stdfs::path &home,
                                    const std::string &given, bool purge, MigrationObserver &obs) {
    auto rel = normalise_item_path(given, home, store);
    if (!rel) return tl::unexpected(rel.error());
    auto lock = lock_store(store, std::chrono::milliseconds{0});
    if (!lock) return tl::unexpected(lock.error());
    auto m = load_manifest(store);
    if (!m) return tl::unexpected(m.error());
    const Item *item = m->find(*rel);
    if (!item) return fail("~/" + *rel + " is not persisted", "see `berth persist status`", 2);
    Migrator mig(store, home, obs);
    auto r = mig.unlink(*item, purge);
    if (!r) return r;
    std::erase_if(m->items, [&](const Item &i) { return i.path == *rel; });
    BERTH_TRY(save_manifest(store, *m));
    return r;
}

Result<PersistRun> persist_restore(const Store &store, const stdfs::path &home,
                                   MigrationObserver &obs, std::chrono::milliseconds lock_wait) {
    auto m = load_manifest(store);
    if (!m) return tl::unexpected(m.error());
    if (m->items.empty())
        return fail("nothing is persisted in " + store.root.string(),
                    "run `berth persist init` first");
    BERTH_TRY(store.prepare());
    auto lock = lock_store(store, lock_wait);
    if (!lock) return tl::unexpected(lock.error());
    finish_journaled(store, home, *m, obs);
    return link_all(store, home, *m, obs);
}

static std::uint64_t disk_of(const stdfs::path &p) {
    auto s = tree::stats(p);
    return s ? s->disk : 0;
}

static ItemStatus status_of(const Store &store, const stdfs::path &home, const Item &item) {
    ItemStatus s{item};
    auto hp = home / item.path, sp = store.cfg() / item.path;
    struct stat hs {
    }, via{}, ss{};
    bool store_has = ::lstat(sp.c_str(), &ss) == 0;
    if (store_has) s.store_bytes = disk_of(sp);
    if (::lstat(hp.c_str(), &hs) != 0) {
        s.state = ItemState::not_linked;
        s.detail = "run `berth persist restore`";
    } else if (!S_ISLNK(hs.st_mode)) {
        s.state = ItemState::drifted;
        s.home_bytes = disk_of(hp);
        s.detail = "a real " + std::string(S_ISDIR(hs.st_mode) ? "directory" : "file") +
                   " replaced the link; `berth persist restore` merges it back";
    } else if (::stat(hp.c_str(), &via) != 0) {
        s.state = store_has ? ItemState::dangling : ItemState::store_missing;
        s.detail = store_has ? "points at nothing" : "the store lacks its copy";
    } else if (store_has && via.st_dev == ss.st_dev && via.st_ino == ss.st_ino) {
        s.state = ItemState::linked;
    } else {
        std::error_code ec;
        s.state = ItemState::foreign_link;
        s.detail = "-> " + stdfs::read_symlink(hp, ec).string();
    }
    return s;
}

Result<StoreStatus> persist_status(const Store &store, const stdfs::path &home) {
    auto m = load_manifest(store);
    if (!m) return tl::unexpected(m.error());
    StoreStatus st{store};
    for (const auto &item : m->items)
        st.items.push_back(status_of(store, home, item));
    st.store_total = disk_of(store.root);
    std::error_code ec;
    if (stdfs::is_directory(store.journal_dir(), ec))
        for ([[maybe_unused]] const auto &e : stdfs::directory_iterator(store.journal_dir(), ec))
            ++st.pending_journals;
    return st;
}

} // namespace berth
