#include "state/state.hpp"

#include "core/paths.hpp"
#include "util/fs.hpp"

#include <cerrno>
#include <ctime>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

namespace berth {

namespace {

// Each entry migrates the schema one version up; never edit an entry once released.
const char *k_migrations[] = {
    R"(CREATE TABLE instances (
         name TEXT PRIMARY KEY, provider TEXT NOT NULL, provider_id TEXT NOT NULL DEFAULT '',
         status TEXT NOT NULL, spec TEXT NOT NULL DEFAULT '{}',
         ssh_host TEXT NOT NULL DEFAULT '', ssh_port INTEGER NOT NULL DEFAULT 0,
         ssh_user TEXT NOT NULL DEFAULT '', host_key TEXT NOT NULL DEFAULT '',
         jupyter_port INTEGER NOT NULL DEFAULT 0, jupyter_token TEXT NOT NULL DEFAULT '',
         created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, message TEXT NOT NULL DEFAULT '',
         tunnel_port INTEGER NOT NULL DEFAULT 0, tunnel_pid INTEGER NOT NULL DEFAULT 0);
       CREATE TABLE intents (
         id INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL, action TEXT NOT NULL,
         state TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '',
         created_at INTEGER NOT NULL, finished_at INTEGER NOT NULL DEFAULT 0);
       CREATE INDEX intents_instance ON intents(instance);)",
    // The ledger: one row per metered interval (rent while running, storage while it exists).
    R"(CREATE TABLE meters (
         id INTEGER PRIMARY KEY AUTOINCREMENT, instance TEXT NOT NULL, provider TEXT NOT NULL,
         provider_id TEXT NOT NULL, kind TEXT NOT NULL, rate_per_hour REAL NOT NULL,
         start REAL NOT NULL, end REAL NOT NULL DEFAULT 0);
       CREATE INDEX meters_machine ON meters(provider, provider_id);)",
    "ALTER TABLE meters ADD COLUMN amount REAL NOT NULL DEFAULT 0;",
};

std::int64_t now() {
    return static_cast<std::int64_t>(std::time(nullptr));
}

struct Stmt {
    sqlite3_stmt *s = nullptr;
    ~Stmt() { sqlite3_finalize(s); }
};

// Every statement is checked: a failed prepare is an error naming the database, never a
// null statement stepped on.
Result<> prep(sqlite3 *db, Stmt &st, const char *sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &st.s, nullptr) != SQLITE_OK || !st.s)
        return fail(std::string("state database: ") + sqlite3_errmsg(db),
                    "check " + state_db_path().string());
    return {};
}

std::string col_text(sqlite3_stmt *s, int i) {
    auto *t = sqlite3_column_text(s, i);
    return t ? reinterpret_cast<const char *>(t) : "";
}

} // namespace

const char *status_name(Status s) {
    switch (s) {
    case Status::creating:
        return "creating";
    case Status::loading:
        return "loading";
    case Status::running:
        return "running";
    case Status::stopping:
        return "stopping";
    case Status::stopped:
        return "stopped";
    case Status::starting:
        return "starting";
    case Status::destroying:
        return "destroying";
    case Status::destroyed:
        return "destroyed";
    case Status::failed:
        return "failed";
    }
    return "?";
}

std::optional<Status> parse_status(const std::string &s) {
    for (auto st :
         {Status::creating, Status::loading, Status::running, Status::stopping, Status::stopped,
          Status::starting, Status::destroying, Status::destroyed, Status::failed})
        if (s == status_name(st)) return st;
    return std::nullopt;
}

std::filesystem::path state_db_path() {
    return paths::data_home() / "berth" / "state.db";
}

StateDb::~StateDb() {
    if (m_db) sqlite3_close(m_db);
}

StateDb::StateDb(StateDb &&o) noexcept : m_db(o.m_db) {
    o.m_db = nullptr;
}

Result<> StateDb::exec(const std::string &sql) {
    char *err = nullptr;
    if (sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
        std::string e = err ? err : "unknown";
        sqlite3_free(err);
        return fail("state database: " + e, "check " + state_db_path().string());
    }
    return {};
}

Result<int> StateDb::user_version() {
    Stmt st;
    BERTH_TRY(prep(m_db, st, "PRAGMA user_version"));
    if (sqlite3_step(st.s) != SQLITE_ROW)
        return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return sqlite3_column_int(st.s, 0);
}

Result<StateDb> StateDb::open(const std::filesystem::path &file) {
    BERTH_TRY(fs::make_dirs(file.parent_path(), 0700));
    // 0600 before SQLite writes a byte (its -wal and -shm files take the same mode): the
    // database holds Jupyter tokens and host names.
    int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return fail_errno(file.string(), errno);
    ::fchmod(fd, 0600);
    ::close(fd);
    sqlite3 *db = nullptr;
    if (sqlite3_open(file.c_str(), &db) != SQLITE_OK) {
        std::string e = db ? sqlite3_errmsg(db) : "out of memory";
        sqlite3_close(db);
        return fail("cannot open state database " + file.string() + ": " + e);
    }
    StateDb s(db);
    sqlite3_busy_timeout(db, 10000);
    // Several berths may open a new database at once: WAL is switched on (retried while
    // another holds the lock), and migrations run one at a time, each re-reading the version
    // inside its own write transaction, so none is applied twice.
    Result<> wal = fail("state database: busy");
    for (int i = 0; i < 50 && !wal; ++i) {
        wal = s.exec("PRAGMA journal_mode=WAL;");
        if (!wal) ::usleep(100000);
    }
    if (!wal) return tl::unexpected(wal.error());
    BERTH_TRY(s.exec("PRAGMA synchronous=FULL;"));
    const int latest = static_cast<int>(std::size(k_migrations));
    for (;;) {
        BERTH_TRY(s.exec("BEGIN IMMEDIATE;"));
        auto version = s.user_version();
        if (!version) {
            (void)s.exec("ROLLBACK;");
            return tl::unexpected(version.error());
        }
        if (*version > latest) {
            (void)s.exec("ROLLBACK;");
            return fail("state database " + file.string() + " is from a newer berth (schema " +
                            std::to_string(*version) + ")",
                        "upgrade berth");
        }
        if (*version == latest) {
            BERTH_TRY(s.exec("COMMIT;"));
            break;
        }
        auto r = s.exec(k_migrations[*version]);
        if (!r) {
            (void)s.exec("ROLLBACK;");
            return tl::unexpected(r.error());
        }
        BERTH_TRY(s.exec("PRAGMA user_version = " + std::to_string(*version + 1) + "; COMMIT;"));
    }
    return s;
}

static InstanceRecord read_row(sqlite3_stmt *s) {
    InstanceRecord r;
    r.name = col_text(s, 0);
    r.provider = col_text(s, 1);
    r.provider_id = col_text(s, 2);
    r.status = parse_status(col_text(s, 3)).value_or(Status::failed);
    r.spec_json = col_text(s, 4);
    r.ssh_host = col_text(s, 5);
    r.ssh_port = sqlite3_column_int(s, 6);
    r.ssh_user = col_text(s, 7);
    r.host_key = col_text(s, 8);
    r.jupyter_port = sqlite3_column_int(s, 9);
    r.jupyter_token = col_text(s, 10);
    r.created_at = sqlite3_column_int64(s, 11);
    r.updated_at = sqlite3_column_int64(s, 12);
    r.message = col_text(s, 13);
    r.tunnel_port = sqlite3_column_int(s, 14);
    r.tunnel_pid = sqlite3_column_int(s, 15);
    return r;
}

static const char *k_cols =
    "name, provider, provider_id, status, spec, ssh_host, ssh_port, ssh_user, "
    "host_key, jupyter_port, jupyter_token, created_at, updated_at, message, tunnel_port, "
    "tunnel_pid";

Result<std::optional<InstanceRecord>> StateDb::get(const std::string &name) {
    Stmt st;
    std::string sql = std::string("SELECT ") + k_cols + " FROM instances WHERE name = ?";
    BERTH_TRY(prep(m_db, st, sql.c_str()));
    sqlite3_bind_text(st.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st.s);
    if (rc == SQLITE_ROW) return std::optional(read_row(st.s));
    if (rc == SQLITE_DONE) return std::optional<InstanceRecord>{};
    return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
}

Result<std::vector<InstanceRecord>> StateDb::list() {
    Stmt st;
    std::string sql = std::string("SELECT ") + k_cols + " FROM instances ORDER BY created_at, name";
    BERTH_TRY(prep(m_db, st, sql.c_str()));
    std::vector<InstanceRecord> out;
    int rc;
    while ((rc = sqlite3_step(st.s)) == SQLITE_ROW)
        out.push_back(read_row(st.s));
    if (rc != SQLITE_DONE) return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return out;
}

Result<> StateDb::put(const InstanceRecord &r) {
    Stmt st;
    std::string sql = std::string("INSERT OR REPLACE INTO instances (") + k_cols +
                      ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    BERTH_TRY(prep(m_db, st, sql.c_str()));
    int i = 1;
    auto text = [&](const std::string &v) {
        sqlite3_bind_text(st.s, i++, v.c_str(), -1, SQLITE_TRANSIENT);
    };
    text(r.name);
    text(r.provider);
    text(r.provider_id);
    text(status_name(r.status));
    text(r.spec_json.empty() ? "{}" : r.spec_json);
    text(r.ssh_host);
    sqlite3_bind_int(st.s, i++, r.ssh_port);
    text(r.ssh_user);
    text(r.host_key);
    sqlite3_bind_int(st.s, i++, r.jupyter_port);
    text(r.jupyter_token);
    sqlite3_bind_int64(st.s, i++, r.created_at ? r.created_at : now());
    sqlite3_bind_int64(st.s, i++, now());
    text(r.message);
    sqlite3_bind_int(st.s, i++, r.tunnel_port);
    sqlite3_bind_int(st.s, i++, r.tunnel_pid);
    if (sqlite3_step(st.s) != SQLITE_DONE)
        return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return {};
}

Result<> StateDb::set_status(const std::string &name, Status s, const std::string &message) {
    Stmt st;
    BERTH_TRY(prep(m_db, st,
                   "UPDATE instances SET status = ?, message = ?, updated_at = ? WHERE name = ?"));
    sqlite3_bind_text(st.s, 1, status_name(s), -1, SQLITE_STATIC);
    sqlite3_bind_text(st.s, 2, message.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.s, 3, now());
    sqlite3_bind_text(st.s, 4, name.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_DONE)
        return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return {};
}

Result<> StateDb::remove(const std::string &name) {
    Stmt st;
    BERTH_TRY(prep(m_db, st, "DELETE FROM instances WHERE name = ?"));
    sqlite3_bind_text(st.s, 1, name.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_DONE)
        return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return {};
}

Result<std::int64_t> StateDb::intend(const std::string &instance, const std::string &action,
                                     const std::string &detail) {
    Stmt st;
    BERTH_TRY(prep(m_db, st,
                   "INSERT INTO intents (instance, action, state, detail, created_at) VALUES "
                   "(?,?,'pending',?,?)"));
    sqlite3_bind_text(st.s, 1, instance.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 2, action.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 3, detail.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.s, 4, now());
    if (sqlite3_step(st.s) != SQLITE_DONE)
        return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return sqlite3_last_insert_rowid(m_db);
}

Result<> StateDb::finish(std::int64_t intent, bool ok, const std::string &detail) {
    Stmt st;
    BERTH_TRY(
        prep(m_db, st,
             "UPDATE intents SET state = ?, detail = CASE WHEN ? = '' THEN detail ELSE ? END, "
             "finished_at = ? WHERE id = ?"));
    sqlite3_bind_text(st.s, 1, ok ? "done" : "failed", -1, SQLITE_STATIC);
    sqlite3_bind_text(st.s, 2, detail.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 3, detail.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st.s, 4, now());
    sqlite3_bind_int64(st.s, 5, intent);
    if (sqlite3_step(st.s) != SQLITE_DONE)
        return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return {};
}

Result<std::vector<Intent>> StateDb::intents(const std::string &instance) {
    Stmt st;
    BERTH_TRY(
        prep(m_db, st,
             "SELECT id, instance, action, state, detail, created_at, finished_at FROM intents "
             "WHERE instance = ? ORDER BY id"));
    sqlite3_bind_text(st.s, 1, instance.c_str(), -1, SQLITE_TRANSIENT);
    std::vector<Intent> out;
    while (sqlite3_step(st.s) == SQLITE_ROW)
        out.push_back({sqlite3_column_int64(st.s, 0), col_text(st.s, 1), col_text(st.s, 2),
                       col_text(st.s, 3), col_text(st.s, 4), sqlite3_column_int64(st.s, 5),
                       sqlite3_column_int64(st.s, 6)});
    return out;
}

Result<> StateDb::meter_open(const Meter &m) {
    Stmt q;
    BERTH_TRY(prep(m_db, q,
                   "SELECT count(*) FROM meters WHERE provider=? AND provider_id=? AND kind=? "
                   "AND end=0"));
    sqlite3_bind_text(q.s, 1, m.provider.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q.s, 2, m.provider_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q.s, 3, m.kind.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q.s) == SQLITE_ROW && sqlite3_column_int(q.s, 0) > 0) return {};
    Stmt st;
    BERTH_TRY(prep(m_db, st,
                   "INSERT INTO meters (instance, provider, provider_id, kind, rate_per_hour, "
                   "start) VALUES (?,?,?,?,?,?)"));
    sqlite3_bind_text(st.s, 1, m.instance.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 2, m.provider.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 3, m.provider_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 4, m.kind.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st.s, 5, m.rate_per_hour);
    sqlite3_bind_double(st.s, 6, m.start);
    if (sqlite3_step(st.s) != SQLITE_DONE)
        return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return {};
}

Result<> StateDb::meter_close(const std::string &provider, const std::string &provider_id,
                              const std::string &kind, double end) {
    Stmt st;
    std::string sql = "UPDATE meters SET end=max(start, ?) WHERE provider=? AND provider_id=? AND "
                      "end=0";
    if (!kind.empty()) sql += " AND kind=?";
    BERTH_TRY(prep(m_db, st, sql.c_str()));
    sqlite3_bind_double(st.s, 1, end);
    sqlite3_bind_text(st.s, 2, provider.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 3, provider_id.c_str(), -1, SQLITE_TRANSIENT);
    if (!kind.empty()) sqlite3_bind_text(st.s, 4, kind.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st.s) != SQLITE_DONE)
        return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return {};
}

Result<> StateDb::meter_transfer(const Meter &m) {
    Stmt up;
    BERTH_TRY(prep(m_db, up,
                   "UPDATE meters SET amount=max(amount, ?) WHERE provider=? AND "
                   "provider_id=? AND kind='transfer'"));
    sqlite3_bind_double(up.s, 1, m.amount);
    sqlite3_bind_text(up.s, 2, m.provider.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(up.s, 3, m.provider_id.c_str(), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(up.s) != SQLITE_DONE)
        return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    if (sqlite3_changes(m_db) > 0) return {};
    Stmt st;
    BERTH_TRY(prep(m_db, st,
                   "INSERT INTO meters (instance, provider, provider_id, kind, rate_per_hour, "
                   "start, end, amount) VALUES (?,?,?,'transfer',0,0,0,?)"));
    sqlite3_bind_text(st.s, 1, m.instance.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 2, m.provider.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st.s, 3, m.provider_id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st.s, 4, m.amount);
    if (sqlite3_step(st.s) != SQLITE_DONE)
        return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return {};
}

Result<std::vector<Meter>> StateDb::meters() {
    Stmt st;
    BERTH_TRY(prep(m_db, st,
                   "SELECT instance, provider, provider_id, kind, rate_per_hour, start, end, "
                   "amount FROM meters ORDER BY id"));
    std::vector<Meter> out;
    int rc;
    while ((rc = sqlite3_step(st.s)) == SQLITE_ROW)
        out.push_back({col_text(st.s, 0), col_text(st.s, 1), col_text(st.s, 2), col_text(st.s, 3),
                       sqlite3_column_double(st.s, 4), sqlite3_column_double(st.s, 5),
                       sqlite3_column_double(st.s, 6), sqlite3_column_double(st.s, 7)});
    if (rc != SQLITE_DONE) return fail(std::string("state database: ") + sqlite3_errmsg(m_db));
    return out;
}

} // namespace berth
