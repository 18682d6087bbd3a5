// berth's own state on the user's machine: SQLite under $XDG_DATA_HOME/berth/state.db.
//
// Intent before action: every change to an instance is written here (as a pending intent and a
// status like "creating") before the provider is asked, and marked done only when the provider
// confirms. A crash at any point leaves a record that says what was in flight.
#pragma once

#include "util/result.hpp"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

struct sqlite3;

namespace berth {

// The life of an instance. Names are stored as text and appear in --json output.
enum class Status {
    creating,
    loading,
    running,
    stopping,
    stopped,
    starting,
    destroying,
    destroyed,
    failed
};

const char *status_name(Status s);
std::optional<Status> parse_status(const std::string &s);

struct InstanceRecord {
    std::string name;
    std::string provider;    // the registry row's name
    std::string provider_id; // the provider's id for it
    Status status = Status::creating;
    std::string spec_json; // what the user asked for (max_hours, ...)
    std::string ssh_host;
    int ssh_port = 0;
    std::string ssh_user;
    std::string host_key; // the instance's public host key, pinned
    int jupyter_port = 0; // on the instance's loopback
    std::string jupyter_token;
    std::int64_t created_at = 0, updated_at = 0;
    std::string message; // last status message from the provider or engine
    int tunnel_port = 0; // local end of the Jupyter tunnel
    int tunnel_pid = 0;  // the ssh -L process
};

struct Intent {
    std::int64_t id = 0;
    std::string instance, action, state, detail;
    std::int64_t created_at = 0, finished_at = 0;
};

// One metered interval of the ledger: `kind` "rent" (while running) or "storage" (while the
// machine exists); end 0 while it is still open. Times are epoch seconds.
// Kind "transfer" is not an interval: `amount` holds the dollars of transfer so far.
struct Meter {
    std::string instance, provider, provider_id, kind;
    double rate_per_hour = 0, start = 0, end = 0;
    double amount = 0;
};

class StateDb {
public:
    ~StateDb();
    StateDb(StateDb &&) noexcept;
    StateDb &operator=(StateDb &&) = delete;

    // Opens (creating and migrating) the database. Fails naming the file.
    static Result<StateDb> open(const std::filesystem::path &file);

    Result<std::optional<InstanceRecord>> get(const std::string &name);
    Result<std::vector<InstanceRecord>> list();
    // Inserts or replaces the whole record (updated_at is set here).
    Result<> put(const InstanceRecord &r);
    Result<> set_status(const std::string &name, Status s, const std::string &message = {});
    Result<> remove(const std::string &name);

    // Writes a pending intent; returns its id.
    Result<std::int64_t> intend(const std::string &instance, const std::string &action,
                                const std::string &detail = {});
    Result<> finish(std::int64_t intent, bool ok, const std::string &detail = {});
    Result<std::vector<Intent>> intents(const std::string &instance);

    // Opens an interval unless one of that kind is open for the machine already.
    Result<> meter_open(const Meter &m);
    // Closes the machine's open intervals (of `kind`, or all for "") at `end`.
    Result<> meter_close(const std::string &provider, const std::string &provider_id,
                         const std::string &kind, double end);
    Result<std::vector<Meter>> meters();
    // Sets a machine's cumulative transfer dollars (never lowers it).
    Result<> meter_transfer(const Meter &m);

private:
    explicit StateDb(sqlite3 *db) : m_db(db) {}
    Result<> exec(const std::string &sql);
    Result<int> user_version();
    sqlite3 *m_db = nullptr;
};

std::filesystem::path state_db_path();

} // namespace berth
