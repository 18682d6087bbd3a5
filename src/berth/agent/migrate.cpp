#include "agent/migrate.hpp"

#include "util/crash.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"
#include "util/tree.hpp"

#include <cerrno>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

namespace berth {

namespace stdfs = std::filesystem;

const char *action_name(LinkAction a) {
    switch (a) {
    case LinkAction::linked:
        return "linked";
    case LinkAction::created:
        return "created";
    case LinkAction::restored:
        return "restored";
    case LinkAction::migrated:
        return "migrated";
    case LinkAction::merged:
        return "merged";
    case LinkAction::repaired:
        return "repaired";
    case LinkAction::recovered:
        return "recovered";
    case LinkAction::foreign_link:
        return "foreign-link";
    }
    return "?";
}

struct Migrator::Paths {
    stdfs::path home_path;     // ~/X
    stdfs::path store_path;    // <store>/cfg/X
    stdfs::path aside;         // ~/.X.berth-old: the original, moved aside after the store has it
    stdfs::path incoming;      // <store>/cfg/.X.berth-incoming: a copy being made
    stdfs::path home_incoming; // ~/.X.berth-incoming: a copy back (unlink)
};

namespace {

stdfs::path named_sibling(const stdfs::path &p, const char *suffix) {
    return p.parent_path() / ("." + p.filename().string() + suffix);
}

bool exists_l(const stdfs::path &p) {
    struct stat st {};
    return ::lstat(p.c_str(), &st) == 0;
}

Result<std::string> read_link(const stdfs::path &p) {
    std::error_code ec;
    auto t = stdfs::read_symlink(p, ec);
    if (ec) return fail(p.string() + ": " + ec.message());
    return t.string();
}

// Same kind and same content (hash for files, target for links)?
Result<bool> same_content(const stdfs::path &a, const struct stat &sa, const stdfs::path &b,
                          const struct stat &sb) {
    if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) return false;
    if (S_ISLNK(sa.st_mode)) {
        auto ta = read_link(a), tb = read_link(b);
        if (!ta) return tl::unexpected(ta.error());
        if (!tb) return tl::unexpected(tb.error());
        return *ta == *tb;
    }
    if (!S_ISREG(sa.st_mode)) return sa.st_rdev == sb.st_rdev; // FIFOs, sockets: never opened
    if (sa.st_size != sb.st_size) return false;
    auto ha = sha256_file(a), hb = sha256_file(b);
    if (!ha) return tl::unexpected(ha.error());
    if (!hb) return tl::unexpected(hb.error());
    return *ha == *hb;
}

// Files and links only: directories' own mtimes move when we add to them.
bool unchanged(const tree::Digest &before, const tree::Digest &after) {
    auto filter = [](const tree::Digest &d) {
        std::map<std::string, std::pair<std::uint64_t, std::int64_t>> m;
        for (const auto &[rel, e] : d)
            if (e.kind == tree::Kind::file || e.kind == tree::Kind::symlink)
                m[rel] = {e.size, e.mtime_ns};
        return m;
    };
    return filter(before) == filter(after);
}

std::string journal_name(const std::string &item) {
    std::string out;
    for (char c : item)
        out += c == '/' ? std::string("%2F") : std::string(1, c);
    return out + ".json";
}

} // namespace

Migrator::Migrator(const Store &store, stdfs::path home, MigrationObserver &obs)
    : m_store(store), m_home(std::move(home)), m_obs(obs) {}

Migrator::Paths Migrator::paths_for(const Item &item) const {
    Paths p;
    p.home_path = m_home / item.path;
    p.store_path = m_store.cfg() / item.path;
    p.aside = named_sibling(p.home_path, ".berth-old");
    p.incoming = named_sibling(p.store_path, ".berth-incoming");
    p.home_incoming = named_sibling(p.home_path, ".berth-incoming");
    return p;
}

// The journal records the intent (and the conflicts directory name, so a rerun after a crash
// puts conflicts in the same place) before any byte moves.
Result<std::string> Migrator::journal_begin(const Item &item, const char *op) {
    auto path = m_store.journal_dir() / journal_name(item.path);
    if (stdfs::exists(path)) {
        auto text = fs::read_file(path);
        if (text) {
            auto j = nlohmann::json::parse(*text, nullptr, false);
            if (j.is_object() && j.contains("ts") && j["ts"].is_string()) {
                std::string ts = j["ts"].get<std::string>();
                // The timestamp names a directory: only its own shape is accepted.
                if (!ts.empty() && ts.size() < 40 &&
                    ts.find_first_not_of("0123456789-TZ") == std::string::npos) {
                    m_store.log("resuming interrupted " +
                                (j.contains("op") && j["op"].is_string()
                                     ? j["op"].get<std::string>()
                                     : std::string("?")) +
                                " of " + item.path);
                    return ts;
                }
            }
        }
    }
    std::string ts = timestamp_name();
    nlohmann::json j{{"path", item.path}, {"op", op}, {"ts", ts}, {"pid", ::getpid()}};
    BERTH_TRY(fs::write_file_atomic(path, j.dump() + "\n"));
    return ts;
}

void Migrator::journal_end(const Item &item) {
    ::unlink((m_store.journal_dir() / journal_name(item.path)).c_str());
}

Result<> Migrator::check_space(const stdfs::path &src, const stdfs::path &dst_dir) {
    auto st = tree::stats(src);
    if (!st) return tl::unexpected(st.error());
    auto free = fs::free_bytes(dst_dir);
    if (!free) return tl::unexpected(free.error());
    // Leave headroom for metadata: a full store is worse than a refused migration.
    std::uint64_t need = st->bytes + (st->files + st->dirs) * 4096;
    if (need > *free)
        return fail("not enough space in " + dst_dir.string() + " for " + src.string() +
                        ": needs " + str::human_bytes(need) + ", " + str::human_bytes(*free) +
                        " free",
                    "free space in the store or pass --store DIR");
    return {};
}

// Copies src to dst (absent) through dst's incoming name, verifies, renames into place.
Result<> Migrator::copy_verified(const stdfs::path &src, const stdfs::path &dst, LinkReport &rep) {
    auto inc = named_sibling(dst, ".berth-incoming");
    if (exists_l(inc)) BERTH_TRY(tree::remove(inc)); // a partial copy from a crash; src is intact
    tree::CopyOptions opt;
    opt.preserve_owner = ::geteuid() == 0;
    opt.on_bytes = [&](std::uint64_t n) {
        rep.bytes_moved += n;
        m_obs.copied(n);
    };
    opt.on_step = [](std::string_view s) { crash_point(s); };
    std::vector<std::string> notes;
    opt.notes = &notes;
    auto copied = tree::copy(src, inc, opt);
    for (const auto &n : notes) {
        m_store.log(n);
        rep.note += (rep.note.empty() ? "" : "; ") + n;
    }
    Result<> r;
    if (!copied) {
        r = tl::unexpected(copied.error());
    } else {
        crash_point("copied");
        auto check = tree::digest(inc);
        if (!check) {
            r = tl::unexpected(check.error());
        } else if (auto diffs = tree::compare(*copied, *check); !diffs.empty()) {
            r = fail("verification of the copy of " + src.string() + " failed: " + diffs.front(),
                     "check the store's disk; nothing was moved");
        }
    }
    if (!r) {
        (void)tree::remove(inc);
        if (str::contains(r.error().what, "No space left"))
            r.error().fix = "free space in the store or pass --store DIR; nothing was moved";
        return r;
    }
    if (::rename(inc.c_str(), dst.c_str()) != 0) return fail_errno(dst.string(), errno);
    BERTH_TRY(fs::fsync_dir(dst.parent_path()));
    crash_point("stored");
    return {};
}

Result<> Migrator::move_in(const stdfs::path &src, const stdfs::path &dst, LinkReport &rep) {
    // Same file system: rename(2) moves the whole tree atomically, so there is never a moment
    // without one complete copy, and nothing to verify. A crash after it leaves ~/X missing
    // and the store complete, which the next run links.
    struct stat s {
    }, d{};
    if (::lstat(src.c_str(), &s) == 0 && ::stat(dst.parent_path().c_str(), &d) == 0 &&
        s.st_dev == d.st_dev) {
        if (::rename(src.c_str(), dst.c_str()) == 0) {
            BERTH_TRY(fs::fsync_dir(dst.parent_path()));
            BERTH_TRY(fs::fsync_dir(src.parent_path()));
            crash_point("stored");
            auto st = tree::stats(dst);
            rep.bytes_moved = st ? st->bytes : 0;
            rep.note = "renamed (same file system)";
            return {};
        }
        if (errno != EXDEV) return fail_errno("move " + src.string(), errno);
    }
    BERTH_TRY(check_space(src, dst.parent_path()));
    auto st = tree::stats(src);
    m_obs.copy_started(rep.path, st ? st->bytes : 0);
    auto r = copy_verified(src, dst, rep);
    m_obs.copy_finished();
    return r;
}

Result<> Migrator::merge_entry(const stdfs::path &src, const stdfs::path &dst,
                               const stdfs::path &conflicts, const std::string &rel,
                               LinkReport &rep) {
    stdfs::path s = rel.empty() ? src : src / rel;
    stdfs::path d = rel.empty() ? dst : dst / rel;
    struct stat ss {
    }, ds{};
    if (::lstat(s.c_str(), &ss) != 0) return fail_errno(s.string(), errno);
    if (::lstat(d.c_str(), &ds) != 0) {
        if (errno != ENOENT) return fail_errno(d.string(), errno);
        return copy_verified(s, d, rep); // the store lacks it: copy it in
    }
    if (S_ISDIR(ss.st_mode) && S_ISDIR(ds.st_mode)) {
        std::error_code ec;
        std::vector<std::string> names;
        for (const auto &e : stdfs::directory_iterator(s, ec))
            names.push_back(e.path().filename());
        if (ec) return fail(s.string() + ": " + ec.message());
        std::sort(names.begin(), names.end());
        for (const auto &n : names)
            BERTH_TRY(merge_entry(src, dst, conflicts, rel.empty() ? n : rel + "/" + n, rep));
        return {};
    }
    if (!S_ISDIR(ss.st_mode)) {
        auto same = same_content(s, ss, d, ds);
        if (!same) return tl::unexpected(same.error());
        if (*same) return {};
    }
    // Both sides hold something different: the store's copy wins, ours is kept.
    stdfs::path keep = rel.empty() ? conflicts : conflicts / rel;
    struct stat ks {};
    if (::lstat(keep.c_str(), &ks) == 0) {
        if (!S_ISDIR(ss.st_mode)) {
            auto same = same_content(s, ss, keep, ks);
            if (same && *same) return {}; // kept by an earlier, interrupted run
        }
        BERTH_TRY(tree::remove(keep)); // a partial keep from an interrupted run; s is intact
    }
    BERTH_TRY(fs::make_dirs(keep.parent_path()));
    BERTH_TRY(copy_verified(s, keep, rep));
    ++rep.conflicts;
    return {};
}

Result<> Migrator::merge(const stdfs::path &src, const stdfs::path &dst,
                         const stdfs::path &conflicts, LinkReport &rep) {
    BERTH_TRY(check_space(src, dst.parent_path()));
    auto st = tree::stats(src);
    m_obs.copy_started(rep.path, st ? st->bytes : 0);
    auto r = merge_entry(src, dst, conflicts, "", rep);
    m_obs.copy_finished();
    if (rep.conflicts) rep.conflicts_dir = conflicts.string();
    return r;
}

// ~/X holds real content that the store now has too: move ~/X aside, link, then drop the
// aside copy once it is known to be unchanged since it was read.
Result<> Migrator::swap_in_link(const Item &item, const Paths &p, const std::string &ts,
                                LinkReport &rep) {
    auto before = tree::shallow(p.home_path);
    if (!before) return tl::unexpected(before.error());
    if (::rename(p.home_path.c_str(), p.aside.c_str()) != 0)
        return fail_errno("move " + p.home_path.string() + " aside", errno);
    crash_point("aside");
    BERTH_TRY(fs::symlink_atomic(p.store_path, p.home_path, false));
    crash_point("linked");
    auto conflicts = m_store.conflicts() / ts / item.path;
    for (int round = 0;; ++round) {
        auto after = tree::shallow(p.aside);
        if (!after) return tl::unexpected(after.error());
        if (unchanged(*before, *after)) break;
        if (round == 2) {
            rep.note = "kept " + p.aside.string() + ": it kept changing while it was moved";
            return {};
        }
        // Something wrote to ~/X while we copied it: merge those writes in too.
        before = std::move(after);
        BERTH_TRY(merge(p.aside, p.store_path, conflicts, rep));
    }
    return tree::remove(p.aside);
}

// Finishes what a killed run left: an aside original, or a partial incoming copy.
Result<> Migrator::recover(const Item &item, const Paths &p, const std::string &ts,
                           LinkReport &rep) {
    if (exists_l(p.aside)) {
        // The aside copy exists only after the store holds a complete X: merge any difference
        // (none, normally) and drop it.
        if (!exists_l(p.home_path)) BERTH_TRY(fs::symlink_atomic(p.store_path, p.home_path, false));
        BERTH_TRY(merge(p.aside, p.store_path, m_store.conflicts() / ts / item.path, rep));
        BERTH_TRY(tree::remove(p.aside));
        rep.action = LinkAction::recovered;
        m_store.log("recovered interrupted migration of " + item.path);
    }
    if (exists_l(p.incoming)) {
        struct stat hs {};
        bool source_intact = ::lstat(p.home_path.c_str(), &hs) == 0 && !S_ISLNK(hs.st_mode);
        if (!source_intact && !exists_l(p.store_path))
            return fail("partial copy " + p.incoming.string() + " has no original left",
                        "inspect it and move it to " + p.store_path.string() + " by hand");
        BERTH_TRY(tree::remove(p.incoming));
        m_store.log("removed partial copy " + p.incoming.string());
    }
    return {};
}

static Result<> create_empty(const stdfs::path &p, ItemKind kind, const std::string &name) {
    BERTH_TRY(fs::make_dirs(p.parent_path()));
    bool secret = name == ".ssh" || name == ".git-credentials" || name == ".netrc" ||
                  name == ".bash_history" || name == ".kaggle";
    if (kind == ItemKind::dir) {
        if (::mkdir(p.c_str(), secret ? 0700 : 0755) != 0 && errno != EEXIST)
            return fail_errno(p.string(), errno);
        return fs::fsync_dir(p.parent_path());
    }
    return fs::write_file_atomic(p, "", secret ? 0600 : 0644);
}

Result<LinkReport> Migrator::link(const Item &item) {
    Paths p = paths_for(item);
    LinkReport rep{item.path};
    BERTH_TRY(fs::make_dirs(p.store_path.parent_path()));
    // A journal entry alone counts too: a rename on one file system killed right after it
    // leaves only the journal and a missing ~/X, which the link below finishes.
    bool leftovers = exists_l(p.aside) || exists_l(p.incoming) ||
                     exists_l(m_store.journal_dir() / journal_name(item.path));

    struct stat hs {};
    bool home_exists = ::lstat(p.home_path.c_str(), &hs) == 0;
    if (!home_exists && errno != ENOENT && errno != ENOTDIR)
        return fail_errno(p.home_path.string(), errno);
    bool real_content = home_exists && !S_ISLNK(hs.st_mode);

    std::string ts;
    if (leftovers || real_content) {
        auto j = journal_begin(item, "link");
        if (!j) return tl::unexpected(j.error());
        ts = *j;
        BERTH_TRY(recover(item, p, ts, rep));
        home_exists = ::lstat(p.home_path.c_str(), &hs) == 0;
        real_content = home_exists && !S_ISLNK(hs.st_mode);
    }

    if (!home_exists) {
        BERTH_TRY(fs::make_dirs(p.home_path.parent_path()));
        if (!exists_l(p.store_path)) {
            BERTH_TRY(create_empty(p.store_path, item.kind, item.path));
            if (rep.action != LinkAction::recovered) rep.action = LinkAction::created;
        } else if (rep.action != LinkAction::recovered) {
            rep.action = LinkAction::restored;
        }
        BERTH_TRY(fs::symlink_atomic(p.store_path, p.home_path, false));
    } else if (S_ISLNK(hs.st_mode)) {
        auto target = read_link(p.home_path);
        if (!target) return tl::unexpected(target.error());
        struct stat via {
        }, tst{};
        bool resolves = ::stat(p.home_path.c_str(), &via) == 0;
        int err = errno;
        if (resolves && ::stat(p.store_path.c_str(), &tst) == 0 && via.st_dev == tst.st_dev &&
            via.st_ino == tst.st_ino) {
            // Already ours (fastai's `ln -s /storage/cfg/.local/` counts too).
        } else if (!resolves && err == ELOOP) {
            return fail(p.home_path.string() + " is a symlink loop",
                        "remove or fix the link, then rerun");
        } else if (!resolves &&
                   (stdfs::path(*target).lexically_normal() == p.store_path.lexically_normal() ||
                    err == ENOENT)) {
            // Dangling (or pointing at our missing copy): replacing it loses nothing.
            if (!exists_l(p.store_path))
                BERTH_TRY(create_empty(p.store_path, item.kind, item.path));
            BERTH_TRY(fs::symlink_atomic(p.store_path, p.home_path, false));
            rep.action = LinkAction::repaired;
            rep.note = "replaced dangling link to " + *target;
        } else {
            rep.action = LinkAction::foreign_link;
            rep.note = "links to " + *target + "; left alone";
        }
    } else {
        bool store_has = exists_l(p.store_path);
        if (store_has)
            BERTH_TRY(merge(p.home_path, p.store_path, m_store.conflicts() / ts / item.path, rep));
        else
            BERTH_TRY(move_in(p.home_path, p.store_path, rep));
        if (exists_l(p.home_path))
            BERTH_TRY(swap_in_link(item, p, ts, rep));
        else // renamed into the store: only the link is missing
            BERTH_TRY(fs::symlink_atomic(p.store_path, p.home_path, false));
        rep.action = store_has ? LinkAction::merged : LinkAction::migrated;
        m_store.log(std::string(action_name(rep.action)) + " " + item.path + " (" +
                    str::human_bytes(rep.bytes_moved) + ", " + std::to_string(rep.conflicts) +
                    " conflicts)");
    }
    if (!ts.empty()) journal_end(item);
    return rep;
}

Result<UnlinkReport> Migrator::unlink(const Item &item, bool purge) {
    Paths p = paths_for(item);
    UnlinkReport rep{item.path};
    struct stat hs {};
    bool home_exists = ::lstat(p.home_path.c_str(), &hs) == 0;
    if (home_exists && !S_ISLNK(hs.st_mode)) {
        if (!exists_l(p.store_path)) return rep; // already copied back by an interrupted run
        return fail(p.home_path.string() + " is a real " +
                        (S_ISDIR(hs.st_mode) ? "directory" : "file") + ", not berth's link",
                    "run `berth persist restore` first so nothing is overwritten");
    }
    if (!exists_l(p.store_path))
        return fail(p.store_path.string() + " does not exist", "nothing to copy back");
    auto ts = journal_begin(item, "unlink");
    if (!ts) return tl::unexpected(ts.error());

    LinkReport copy_rep{item.path};
    BERTH_TRY(check_space(p.store_path, p.home_path.parent_path()));
    auto st = tree::stats(p.store_path);
    m_obs.copy_started(item.path, st ? st->bytes : 0);
    auto inc = p.home_incoming;
    if (exists_l(inc)) BERTH_TRY(tree::remove(inc));
    tree::CopyOptions opt;
    opt.preserve_owner = ::geteuid() == 0;
    opt.on_bytes = [&](std::uint64_t n) {
        m_obs.copied(n);
        rep.bytes += n;
    };
    auto copied = tree::copy(p.store_path, inc, opt);
    m_obs.copy_finished();
    if (!copied) {
        (void)tree::remove(inc);
        return tl::unexpected(copied.error());
    }
    auto check = tree::digest(inc);
    if (!check || !tree::compare(*copied, *check).empty()) {
        (void)tree::remove(inc);
        return fail("verification of the copy back to " + p.home_path.string() + " failed",
                    "nothing was changed; check the disk");
    }
    if (home_exists && ::unlink(p.home_path.c_str()) != 0)
        return fail_errno(p.home_path.string(), errno);
    crash_point("unlinked");
    if (::rename(inc.c_str(), p.home_path.c_str()) != 0)
        return fail_errno(p.home_path.string(), errno);
    BERTH_TRY(fs::fsync_dir(p.home_path.parent_path()));

    if (purge) {
        auto store_digest = tree::digest(p.store_path);
        auto home_digest = tree::digest(p.home_path);
        if (!store_digest || !home_digest || !tree::compare(*store_digest, *home_digest).empty())
            return fail("the copy in $HOME differs from the store's; the store's copy is kept at " +
                        p.store_path.string());
        BERTH_TRY(tree::remove(p.store_path));
    } else {
        auto dest = m_store.removed() / *ts / item.path;
        BERTH_TRY(fs::make_dirs(dest.parent_path()));
        if (::rename(p.store_path.c_str(), dest.c_str()) != 0)
            return fail_errno(dest.string(), errno);
        rep.store_copy = dest.string();
    }
    journal_end(item);
    m_store.log("unpersisted " + item.path +
                (purge ? " (store copy purged)" : " (store copy kept)"));
    return rep;
}

} // namespace berth
