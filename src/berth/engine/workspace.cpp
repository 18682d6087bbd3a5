#include "engine/workspace.hpp"

#include "core/json_read.hpp"

#include "engine/lifecycle.hpp"
#include "provider/provider.hpp"
#include "remote/ssh.hpp"
#include "store/remote_backend.hpp"
#include "store/repo_sink.hpp"
#include "store/s3_backend.hpp"
#include "store/stream.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <ctime>
#include <deque>
#include <fcntl.h>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace berth {

namespace stdfs = std::filesystem;
using namespace store;

std::vector<std::string> default_instance_paths(const Capabilities &caps) {
    // What destroy loses, and the persisted environment where it lives on a shared volume
    // (elsewhere it lives inside the work directory, under .berth).
    auto paths = caps.destroy_loses;
    if (caps.shared_volume) paths.push_back("storage/cfg");
    return paths;
}

std::vector<std::string> remote_berth(const InstanceRecord &r,
                                      const std::vector<std::string> &args) {
    auto t = Engine::target_of(r);
    std::vector<std::string> argv = {"ssh", "-T", "-o", "BatchMode=yes"};
    auto opts = ssh::options(t);
    argv.insert(argv.end(), opts.begin(), opts.end());
    argv.push_back(t.host);
    // The agent is in /usr/local/bin, or ~/.local/bin where the login user cannot write there
    // (a Paperspace VM's `paperspace`), or ~/.berth/bin on a cluster's shared home:
    // non-interactive shells do not have the last two on PATH.
    argv.push_back("PATH=\"$HOME/.local/bin:$HOME/.berth/bin:$PATH\"");
    // Several machines on one host's home: this machine's agent directory.
    if (auto h = Engine::host_of(r); !h.agent_dir.empty())
        argv.push_back("BERTH_AGENT_DIR=" + str::shell_quote(h.agent_dir));
    argv.push_back("berth");
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
}

namespace {

// Microseconds, so snapshots taken within one second still sort in the order they were taken.
std::string now_iso() {
    struct timespec ts {};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    std::tm tm{};
    ::gmtime_r(&ts.tv_sec, &tm);
    char buf[40], out[64];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(out, sizeof out, "%s.%06ldZ", buf, ts.tv_nsec / 1000);
    return out;
}

std::string new_snapshot_id() {
    return random_hex(8);
}

std::string hostname() {
    char h[256] = {};
    ::gethostname(h, sizeof h - 1);
    return h;
}

// Which snapshot was last restored onto a source (an instance's paths, or a directory): after a
// restore onto a new machine, that snapshot is the parent of its first save, so nothing
// unchanged is read again.
stdfs::path restored_file() {
    return ssh::berth_dir() / "restored.json";
}

void remember_restore(const RepoStore &repo, const std::string &source,
                      const std::string &snapshot) {
    auto j = nlohmann::json::parse(fs::read_file(restored_file()).value_or("{}"), nullptr, false);
    if (!j.is_object()) j = nlohmann::json::object();
    j[repo.id() + "|" + source] = snapshot;
    if (fs::make_dirs(restored_file().parent_path(), 0700))
        (void)fs::write_file_atomic(restored_file(), j.dump(1) + "\n", 0600);
}

std::optional<Snapshot> latest_of(RepoStore &repo, const std::string &source) {
    // The readable snapshots: a damaged one is reported by verify, and only costs this save
    // its parent (everything is read again), never a wrong parent.
    auto all = repo.scan_snapshots().good;
    for (auto it = all.rbegin(); it != all.rend(); ++it)
        if (it->source == source) return *it;
    auto j = nlohmann::json::parse(fs::read_file(restored_file()).value_or("{}"), nullptr, false);
    auto id = jsonr::text(j, (repo.id() + "|" + source).c_str());
    if (!id.empty()) {
        auto s = repo.find_snapshot(id);
        if (s) return *s;
    }
    return std::nullopt;
}

std::string instance_source(const InstanceRecord &r, const std::vector<std::string> &paths) {
    return r.name + ":/" + str::join(paths, ",/");
}

Result<SaveResult> commit(RepoStore &repo, RepoSink &sink, const SaveStats &stats,
                          const std::string &source, const std::vector<std::string> &paths,
                          const std::optional<Snapshot> &parent, const InstanceRecord *from) {
    BERTH_TRY(repo.commit());
    auto tree = finish_tree(std::move(sink.entries));
    if (!tree) return tl::unexpected(tree.error());
    auto id = repo.put_tree(*tree);
    if (!id) return tl::unexpected(id.error());
    if (!stats.tree_id.empty() && *id != stats.tree_id)
        return fail("the saved tree does not match what the machine read", "retry the save");
    SaveResult res;
    res.stats = stats;
    res.tree_unchanged = parent && parent->tree == *id;
    Snapshot s;
    s.id = new_snapshot_id();
    s.time = now_iso();
    s.host = hostname();
    s.source = source;
    s.paths = paths;
    s.tree = *id;
    s.parent = parent ? parent->id : "";
    s.files = stats.files;
    s.bytes = stats.bytes;
    s.new_bytes = stats.new_bytes;
    s.stored_bytes = stats.stored_bytes;
    if (from) {
        s.instance = from->name;
        s.provider = from->provider;
    }
    BERTH_TRY(repo.put_snapshot(s));
    res.snapshot = s;
    return res;
}

// The paths a save of an instance covers: the given ones, relative and checked, or the
// provider's default.
Result<> instance_paths(const Capabilities &caps, const InstanceRecord &r,
                        std::vector<std::string> &paths) {
    // On a host berth does not own, the machine's work directory (the rest is the user's).
    if (auto host = Engine::host_of(r); paths.empty() && !host.workdir.empty())
        paths = {host.workdir};
    if (paths.empty()) paths = default_instance_paths(caps);
    for (auto &p : paths) {
        while (!p.empty() && p[0] == '/')
            p.erase(0, 1);
        BERTH_TRY(check_entry_path(p));
    }
    return {};
}

Result<> require_running(const InstanceRecord &r) {
    if (r.status != Status::running)
        return fail("instance '" + r.name + "' is " + status_name(r.status),
                    "start it with `berth start " + r.name + "`");
    return {};
}

} // namespace

Result<SaveResult> save_directory(RepoStore &repo, const stdfs::path &dir, bool progress) {
    auto root = fs::absolute_normal(dir);
    struct stat st {};
    if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return fail(root.string() + " is not a directory", "name a directory or an instance");
    if (auto here = repo.local_root(); here && fs::is_within(*here, root))
        return fail("the repository " + here->string() + " is inside " + root.string(),
                    "put the repository elsewhere");
    BERTH_TRY(repo.lock(true));
    std::string source = root.string();
    auto parent = latest_of(repo, source);
    std::optional<Tree> parent_tree;
    if (parent) {
        auto t = repo.get_tree(parent->tree);
        if (t) parent_tree = std::move(*t);
    }
    RepoSink sink(repo, progress, "save " + root.filename().string());
    SaveOptions opt;
    opt.root = root;
    opt.parent = parent_tree ? &*parent_tree : nullptr;
    opt.parent_tree_id = parent ? parent->tree : "";
    opt.chunker = repo.chunker();
    opt.ids = repo.ids();
    opt.cache_file = cache_file_for(repo.id(), root, {});
    auto stats = save_tree(opt, sink);
    sink.done();
    if (!stats) {
        (void)repo.commit(); // what was read is kept: the next save will not send it again
        return tl::unexpected(stats.error());
    }
    return commit(repo, sink, *stats, source, {}, parent, nullptr);
}

Result<SaveResult> save_instance(RepoStore &repo, const InstanceRecord &r, const Capabilities &caps,
                                 std::vector<std::string> paths, bool progress) {
    BERTH_TRY(require_running(r));
    BERTH_TRY(instance_paths(caps, r, paths));
    BERTH_TRY(repo.lock(true));
    std::string source = instance_source(r, paths);
    auto parent = latest_of(repo, source);
    std::optional<Tree> parent_tree;
    if (parent) {
        auto t = repo.get_tree(parent->tree);
        if (t) parent_tree = std::move(*t);
    }
    RemoteSave req{"/",
                   paths,
                   repo.id(),
                   repo.chunker(),
                   parent_tree ? &*parent_tree : nullptr,
                   parent ? parent->tree : "",
                   repo.ids()};
    auto pipe = proc::spawn_pipe(remote_berth(r, {"agent", "save-stream"}));
    if (!pipe) return tl::unexpected(pipe.error());
    RepoSink sink(repo, progress, "save " + r.name);
    auto stats = client_save(pipe->in, pipe->out, req, repo.chunk_ids(), sink);
    pipe->in = -1; // closed by client_save
    sink.done();
    int status = proc::wait_pipe(*pipe);
    if (!stats) {
        (void)repo.commit();
        return tl::unexpected(stats.error());
    }
    if (status != 0)
        return fail("berth on '" + r.name + "' exited with " + std::to_string(status),
                    "see the message above");
    return commit(repo, sink, *stats, source, paths, parent, &r);
}

namespace {

// Reads, decompresses and verifies chunks on a second thread, in exactly the order the restore
// writes them, so reading the repository overlaps with writing the files.
class Prefetch {
public:
    Prefetch(RepoStore &repo, const Tree &t) : m_repo(repo) {
        for (const auto &e : t.entries)
            if (e.type == EntryType::file)
                m_order.insert(m_order.end(), e.chunks.begin(), e.chunks.end());
        repo.plan_reads(m_order);
        m_thread = std::thread([this] { run(); });
    }
    ~Prefetch() {
        {
            std::lock_guard lk(m_mu);
            m_stop = true;
        }
        m_space.notify_all();
        m_thread.join();
    }
    Result<std::string> next(const ChunkId &want) {
        std::unique_lock lk(m_mu);
        m_ready.wait(lk, [&] { return !m_queue.empty(); });
        auto r = std::move(m_queue.front());
        m_queue.pop_front();
        if (r && !r->empty()) m_bytes -= r->size();
        m_space.notify_one();
        if (r && m_next++ >= m_order.size())
            return fail("restore asked for more chunks than the tree has");
        if (r && m_order[m_next - 1] != want) return fail("restore order mismatch");
        return r;
    }

private:
    void run() {
        for (const auto &id : m_order) {
            auto r = m_repo.read(id);
            std::unique_lock lk(m_mu);
            m_space.wait(lk, [&] { return m_bytes < (64u << 20) || m_stop; });
            if (m_stop) return;
            if (r) m_bytes += r->size();
            bool failed = !r;
            m_queue.push_back(std::move(r));
            m_ready.notify_one();
            if (failed) return;
        }
    }
    RepoStore &m_repo;
    std::vector<ChunkId> m_order;
    std::size_t m_next = 0, m_bytes = 0;
    std::deque<Result<std::string>> m_queue;
    std::mutex m_mu;
    std::condition_variable m_ready, m_space;
    bool m_stop = false;
    std::thread m_thread;
};

} // namespace

Result<RestoreStats> restore_directory(RepoStore &repo, const Snapshot &s, const stdfs::path &dir,
                                       bool progress) {
    BERTH_TRY(repo.lock(false));
    auto tree = repo.get_tree(s.tree);
    if (!tree) return tl::unexpected(tree.error());
    std::unique_ptr<term::Progress> bar;
    if (progress) bar = std::make_unique<term::Progress>("restore " + s.id.substr(0, 8), s.bytes);
    auto root = fs::absolute_normal(dir);
    BERTH_TRY(check_tree(*tree)); // before a thread starts reading
    Prefetch prefetch(repo, *tree);
    auto st = restore_tree(
        *tree, s.tree, root, [&](const ChunkId &id) { return prefetch.next(id); },
        cache_file_for(repo.id(), root, {}),
        [&](std::uint64_t n) {
            if (bar) bar->add(n);
        });
    if (st && s.paths.empty()) remember_restore(repo, root.string(), s.id);
    return st;
}

Result<RestoreStats> restore_instance(RepoStore &repo, const Snapshot &s, const InstanceRecord &r,
                                      const std::string &target, bool progress) {
    BERTH_TRY(require_running(r));
    BERTH_TRY(repo.lock(false));
    auto tree = repo.get_tree(s.tree);
    if (!tree) return tl::unexpected(tree.error());
    auto pipe = proc::spawn_pipe(remote_berth(r, {"agent", "restore-stream"}));
    if (!pipe) return tl::unexpected(pipe.error());
    std::unique_ptr<term::Progress> bar;
    if (progress) bar = std::make_unique<term::Progress>("restore " + r.name, s.bytes);
    std::vector<ChunkId> order; // the agent takes chunks in tree order: fetch neighbours together
    for (const auto &e : tree->entries)
        if (e.type == EntryType::file) order.insert(order.end(), e.chunks.begin(), e.chunks.end());
    repo.plan_reads(std::move(order));
    auto st = client_restore(
        pipe->in, pipe->out, *tree, s.tree, target.empty() ? "/" : target, repo.id(), s.paths,
        repo.ids(),
        [&](const ChunkId &id, std::uint32_t &raw_len) { return repo.read_stored(id, raw_len); },
        [&](std::uint64_t n) {
            if (bar) bar->add(n);
        });
    pipe->in = -1;
    bar.reset();
    proc::wait_pipe(*pipe);
    if (st && (target.empty() || target == "/"))
        remember_restore(repo, instance_source(r, s.paths), s.id);
    return st;
}

Result<RestoreStats> restore_onto_new(RepoStore &repo, const Snapshot &s, const InstanceRecord &r,
                                      const Capabilities &caps, bool progress,
                                      const DirectSave *direct) {
    auto st = direct ? restore_instance_direct(*direct, r, s, "/", &repo)
                     : restore_instance(repo, s, r, "/", progress);
    if (!st) return st;
    // The persisted environment came back as files in the store: link it into $HOME again
    // (packages in ~/.local, keys in ~/.ssh with their modes, git and tool config).
    std::vector<std::string> args;
    auto host = Engine::host_of(r);
    if (!host.store.empty())
        args = {"--store", host.store};
    else if (caps.bootstrap_over_ssh && !caps.shared_volume)
        args = {"--store", caps.workdir + "/.berth/storage"};  // where bootstrap put it
    if (!host.agent_dir.empty() && !host.link_home) return st; // the home is left as it is
    args.insert(args.end(), {"persist", "restore"});
    auto out = proc::run(remote_berth(r, args),
                         {.input = std::string(), .env = {}, .timeout = std::chrono::seconds(120)});
    if (!out) return tl::unexpected(out.error());
    if (out->status != 0)
        return fail("restored, but relinking the environment on '" + r.name +
                        "' failed: " + str::trim(out->err),
                    "run `berth ssh " + r.name + " -- berth persist restore`");
    return st;
}

Result<std::vector<Entry>> scan_here(const stdfs::path &root,
                                     const std::vector<std::string> &paths) {
    // Sizes and mtimes only: the guard must be quick and must not read the work.
    std::vector<Entry> out;
    for (const auto &p : paths) {
        auto base = root / p;
        std::error_code ec;
        if (!stdfs::exists(base, ec)) continue;
        for (auto it = stdfs::recursive_directory_iterator(base, ec);
             !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
            struct stat st {};
            if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
            Entry e;
            e.path = p + "/" + it->path().lexically_relative(base).string();
            e.size = static_cast<std::uint64_t>(st.st_size);
            e.mtime_ns =
                static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
            out.push_back(std::move(e));
        }
    }
    return out;
}

Result<Unsaved> unsaved_work(RepoStore *repo, const InstanceRecord &r, Provider &p) {
    auto caps = p.capabilities();
    auto paths = default_instance_paths(caps);
    // The machine's own files, as they are now: on this host if the provider keeps them here.
    std::vector<Entry> now;
    bool local = true;
    for (const auto &path : paths) {
        auto hp = p.host_path(r.provider_id, path);
        if (!hp) {
            local = false;
            break;
        }
        auto part = scan_here(hp->parent_path(), {hp->filename().string()});
        if (!part) return tl::unexpected(part.error());
        for (auto &e : *part) {
            e.path = path + e.path.substr(hp->filename().string().size());
            now.push_back(std::move(e));
        }
    }
    if (!local && r.status == Status::running) {
        // Over SSH: the machine's agent lists sizes and mtimes (it reads no file contents).
        std::vector<std::string> args = {"agent", "scan", "--root", "/"};
        args.insert(args.end(), paths.begin(), paths.end());
        auto out = proc::run(remote_berth(r, args),
                             {.input = {}, .env = {}, .timeout = std::chrono::seconds(120)});
        if (!out) return tl::unexpected(out.error());
        auto j = nlohmann::json::parse(out->out, nullptr, false);
        if (out->status != 0 || !j.is_array())
            return fail("cannot list '" + r.name + "''s files over SSH: " + str::trim(out->err),
                        "run `berth save " + r.name + "` first, or destroy --force");
        for (const auto &e : j) {
            Entry x;
            x.path = jsonr::text(e, "path", "", 4096);
            x.size = static_cast<std::uint64_t>(std::max(0LL, jsonr::integer(e, "size")));
            x.mtime_ns = jsonr::integer(e, "mtime_ns");
            now.push_back(std::move(x));
        }
        local = true;
    }
    if (!local)
        return fail("cannot look at '" + r.name + "''s files while it is " + status_name(r.status),
                    "`berth start " + r.name + "` and `berth save " + r.name +
                        "`, or destroy --force");
    Unsaved u;
    auto last = repo ? latest_of(*repo, instance_source(r, paths)) : std::nullopt;
    std::map<std::string, const Entry *> saved;
    std::optional<Tree> tree;
    if (last) {
        auto t = repo->get_tree(last->tree);
        if (t) tree = std::move(*t);
    }
    if (tree)
        for (const auto &e : tree->entries)
            saved[e.path] = &e;
    u.never_saved = !last;
    auto lost = [&](const std::string &path) { // only what the provider's destroy loses counts
        for (const auto &l : caps.destroy_loses)
            if (path == l || path.rfind(l + "/", 0) == 0) return true;
        return false;
    };
    for (const auto &e : now) {
        if (!lost(e.path)) continue;
        // berth's own bookkeeping in a machine's persistence store (lock, log) is not work.
        if (str::contains(e.path, ".berth/storage/.berth/")) continue;
        auto it = saved.find(e.path);
        if (it == saved.end() || it->second->size != e.size || it->second->mtime_ns != e.mtime_ns) {
            u.changed.push_back("/" + e.path);
            u.bytes += e.size;
        }
    }
    std::sort(u.changed.begin(), u.changed.end());
    return u;
}

std::string describe_unsaved(const Unsaved &u) {
    std::vector<std::string> first(u.changed.begin(),
                                   u.changed.begin() + std::min<std::size_t>(u.changed.size(), 3));
    std::string s = str::join(first, ", ");
    if (u.changed.size() > 3) s += " and " + std::to_string(u.changed.size() - 3) + " more";
    return s + " (" + str::human_bytes(u.bytes) + ")";
}

} // namespace berth

// ---- saves the machine does itself -----------------------------------------------------------

namespace berth {

nlohmann::json direct_save_json(const DirectSave &d) {
    return {{"host", d.host},
            {"user", d.user},
            {"port", d.port},
            {"location", d.location},
            {"key", d.key},
            {"known_hosts", d.known_hosts},
            {"paths", d.paths},
            {"instance", d.instance},
            {"provider", d.provider},
            {"repo_key", d.repo_key},
            {"snapshot", d.snapshot},
            {"target", d.target},
            {"s3", d.s3}};
}

Result<DirectSave> parse_direct_save(const std::string &line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) return fail("save-direct: the request is not a JSON object");
    DirectSave d;
    d.host = jsonr::text(j, "host", "", 255);
    d.user = jsonr::text(j, "user", "", 64);
    d.port = static_cast<int>(jsonr::integer(j, "port"));
    d.location = jsonr::text(j, "location", "", 4096);
    d.key = jsonr::text(j, "key", "", 16384);
    d.known_hosts = jsonr::text(j, "known_hosts", "", 65536);
    d.instance = jsonr::text(j, "instance", "", 64);
    d.provider = jsonr::text(j, "provider", "", 64);
    d.repo_key = jsonr::text(j, "repo_key", "", 1024);
    d.snapshot = jsonr::text(j, "snapshot", "", 64);
    d.target = jsonr::text(j, "target", "", 4096);
    d.s3 = jsonr::text(j, "s3", "", 8192);
    if (!d.target.empty() && d.target[0] != '/') return fail("save-direct: a relative target");
    if (j.contains("paths") && j["paths"].is_array())
        for (const auto &p : j["paths"])
            if (p.is_string()) d.paths.push_back(p.get<std::string>());
    auto plain = [](const std::string &s) {
        return !s.empty() && s[0] != '-' &&
               s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789._-:") == std::string::npos;
    };
    bool s3 = !d.s3.empty();
    if (s3 ? d.location.rfind("s3:", 0) != 0
           : (!plain(d.host) || (!d.user.empty() && !plain(d.user)) || d.port < 1 ||
              d.port > 65535 || d.key.empty() || d.known_hosts.empty()))
        return fail("save-direct: a malformed request");
    if (d.paths.empty() && d.snapshot.empty()) return fail("save-direct: a malformed request");
    for (const auto &p : d.paths)
        BERTH_TRY(store::check_entry_path(p));
    return d;
}

namespace {

// The key's directory, for the signal handler: fixed paths, unlinked with async-signal-safe calls.
char g_key_file[256], g_hosts_file[256], g_key_dir[256];

void drop_key_and_exit(int sig) {
    ::unlink(g_key_file);
    ::unlink(g_hosts_file);
    ::rmdir(g_key_dir);
    ::_exit(128 + sig);
}

// A save killed with -9 could not clean up: its directory (named by its pid) goes at the next.
void remove_stale_key_dirs(const std::string &base) {
    std::error_code ec;
    for (const auto &e : stdfs::directory_iterator(base, ec)) {
        auto name = e.path().filename().string();
        if (name.rfind("berth-direct-", 0) != 0) continue;
        int pid = std::atoi(name.c_str() + 13);
        if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) continue;
        stdfs::remove_all(e.path(), ec);
    }
}

} // namespace

namespace {

// Opens the repository with the key the request carries (in memory only: never a key file on
// the machine).
Result<std::unique_ptr<Repository>> open_with_request_key(std::unique_ptr<store::Backend> b,
                                                          const DirectSave &d) {
    store::KeyOptions keys;
    if (!d.repo_key.empty()) {
        auto k = store::MasterKey::from_json(d.repo_key);
        if (!k) return tl::unexpected(k.error());
        keys.key = *k;
    }
    return store::Repository::open(std::move(b), false, keys);
}

// Connects from this machine to the repository with the request's key and host key.
Result<std::unique_ptr<Repository>> open_direct_s3(const DirectSave &d) {
    auto loc = store::parse_repo_location(d.location);
    if (!loc || loc->kind != store::RepoLocation::s3)
        return fail("save-direct: not an S3 location");
    auto j = nlohmann::json::parse(d.s3, nullptr, false);
    if (!j.is_object()) return fail("save-direct: malformed S3 credentials");
    store::S3Credentials c{jsonr::text(j, "key", "", 256), jsonr::text(j, "secret", "", 256),
                           jsonr::text(j, "token", "", 4096), jsonr::text(j, "region", "", 64), ""};
    auto backend = store::s3_backend(*loc, c);
    if (!backend) return tl::unexpected(backend.error());
    return open_with_request_key(std::move(*backend), d);
}

Result<std::unique_ptr<Repository>> open_direct(const DirectSave &d) {
    if (!d.s3.empty()) return open_direct_s3(d); // credentials in memory only
    // The key and the host's key live in memory-backed files only while ssh starts; a hang-up
    // or a kill removes them, and a kill -9 leaves them only until the next save.
    std::string base = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    remove_stale_key_dirs(base);
    std::string tmpl = base + "/berth-direct-" + std::to_string(::getpid()) + "-XXXXXX";
    if (!::mkdtemp(tmpl.data())) return fail_errno("a private directory in " + base, errno);
    stdfs::path dir = tmpl;
    std::snprintf(g_key_dir, sizeof g_key_dir, "%s", dir.c_str());
    std::snprintf(g_key_file, sizeof g_key_file, "%s/key", dir.c_str());
    std::snprintf(g_hosts_file, sizeof g_hosts_file, "%s/known_hosts", dir.c_str());
    for (int sig : {SIGHUP, SIGINT, SIGTERM, SIGPIPE})
        std::signal(sig, drop_key_and_exit);
    auto forget_key = [&] {
        std::error_code ec;
        stdfs::remove_all(dir, ec);
        for (int sig : {SIGHUP, SIGINT, SIGTERM})
            std::signal(sig, SIG_DFL);
        std::signal(SIGPIPE, SIG_IGN);
    };
    auto w1 = fs::write_file_atomic(dir / "key", d.key + (d.key.back() == '\n' ? "" : "\n"), 0600);
    auto w2 = fs::write_file_atomic(dir / "known_hosts", d.known_hosts + "\n", 0600);
    if (!w1 || !w2) {
        forget_key();
        return fail("could not write the repository key on this machine");
    }
    std::vector<std::string> argv = {"ssh", "-T",
                                     "-o",  "BatchMode=yes",
                                     "-o",  "IdentitiesOnly=yes",
                                     "-o",  "StrictHostKeyChecking=yes",
                                     "-o",  "UserKnownHostsFile=" + (dir / "known_hosts").string(),
                                     "-o",  "GlobalKnownHostsFile=/dev/null",
                                     "-o",  "ServerAliveInterval=15",
                                     "-i",  (dir / "key").string(),
                                     "-p",  std::to_string(d.port)};
    if (!d.user.empty()) argv.insert(argv.end(), {"-l", d.user});
    argv.insert(argv.end(), {"--", d.host, "repo serve"}); // the host forces its own command
    auto pipe = proc::spawn_pipe(argv);
    if (!pipe) {
        forget_key();
        return tl::unexpected(pipe.error());
    }
    auto backend = store::connect_remote_backend(*pipe, d.location);
    forget_key(); // ssh has read it; nothing of it stays on the machine
    if (!backend) return tl::unexpected(backend.error());
    return open_with_request_key(std::move(*backend), d);
}

} // namespace

Result<SaveResult> save_direct_here(const DirectSave &d) {
    auto repo = open_direct(d);
    if (!repo) return tl::unexpected(repo.error());
    auto &r = **repo;
    BERTH_TRY(r.lock(true));
    std::string source = d.instance + ":/" + str::join(d.paths, ",/");
    auto parent = latest_of(r, source);
    std::optional<Tree> parent_tree;
    if (parent) {
        auto t = r.get_tree(parent->tree);
        if (t) parent_tree = std::move(*t);
    }
    RepoSink sink(r, false, "save");
    SaveOptions opt;
    opt.root = "/";
    opt.paths = d.paths;
    opt.parent = parent_tree ? &*parent_tree : nullptr;
    opt.parent_tree_id = parent ? parent->tree : "";
    opt.chunker = r.chunker();
    opt.ids = r.ids();
    opt.cache_file = cache_file_for(r.id(), "/", d.paths);
    auto stats = save_tree(opt, sink);
    sink.done();
    if (!stats) {
        (void)r.commit();
        return tl::unexpected(stats.error());
    }
    InstanceRecord from;
    from.name = d.instance;
    from.provider = d.provider;
    return commit(r, sink, *stats, source, d.paths, parent, &from);
}

Result<RestoreStats> restore_direct_here(const DirectSave &d) {
    auto repo = open_direct(d);
    if (!repo) return tl::unexpected(repo.error());
    auto &r = **repo;
    BERTH_TRY(r.lock(false));
    auto s = r.find_snapshot(d.snapshot);
    if (!s) return tl::unexpected(s.error());
    auto tree = r.get_tree(s->tree);
    if (!tree) return tl::unexpected(tree.error());
    BERTH_TRY(check_tree(*tree)); // before a thread starts reading
    std::string target = d.target.empty() ? "/" : d.target;
    Prefetch prefetch(r, *tree);
    return restore_tree(
        *tree, s->tree, target, [&](const ChunkId &id) { return prefetch.next(id); },
        cache_file_for(r.id(), target, s->paths), nullptr);
}

namespace {

// Runs `berth agent VERB` on the machine with the request on stdin (it holds keys: never on a
// command line) and returns its one JSON answer.
Result<nlohmann::json> run_direct(const InstanceRecord &r, const char *verb, const DirectSave &d,
                                  const std::string &what) {
    auto out = proc::run(
        remote_berth(r, {"agent", verb}),
        {.input = direct_save_json(d).dump() + "\n", .env = {}, .timeout = std::chrono::hours(12)});
    if (!out) return tl::unexpected(out.error());
    if (out->status != 0) {
        auto lines = str::split(str::trim(out->err), '\n');
        return fail(
            "'" + r.name + "' could not " + what + " " + d.location + ": " +
                (lines.empty() ? std::string("exit ") + std::to_string(out->status) : lines.back()),
            "check that the machine reaches " +
                (d.s3.empty() ? d.host + ":" + std::to_string(d.port) : d.location));
    }
    auto j = nlohmann::json::parse(out->out, nullptr, false);
    if (!j.is_object()) return fail("'" + r.name + "' answered with something else");
    return j;
}

} // namespace

Result<RestoreStats> restore_instance_direct(DirectSave d, const InstanceRecord &r,
                                             const Snapshot &s, const std::string &target,
                                             const RepoStore *repo) {
    BERTH_TRY(require_running(r));
    d.snapshot = s.id;
    d.target = target.empty() ? "/" : target;
    d.paths = s.paths; // for the machine's inode cache
    d.instance = r.name;
    d.provider = r.provider;
    auto answer = run_direct(r, "restore-direct", d, "restore from");
    if (!answer) return tl::unexpected(answer.error());
    const auto &j = *answer;
    RestoreStats st;
    st.files = static_cast<std::uint64_t>(jsonr::integer(j, "files"));
    st.dirs = static_cast<std::uint64_t>(jsonr::integer(j, "dirs"));
    st.symlinks = static_cast<std::uint64_t>(jsonr::integer(j, "symlinks"));
    st.bytes = static_cast<std::uint64_t>(jsonr::integer(j, "bytes"));
    // As after a restore through the laptop: the next save from there starts from this one.
    if (repo && d.target == "/") remember_restore(*repo, instance_source(r, s.paths), s.id);
    return st;
}

Result<SaveResult> save_instance_direct(DirectSave d, const InstanceRecord &r,
                                        const Capabilities &caps, std::vector<std::string> paths) {
    BERTH_TRY(require_running(r));
    BERTH_TRY(instance_paths(caps, r, paths));
    d.paths = paths;
    d.instance = r.name;
    d.provider = r.provider;
    auto answer = run_direct(r, "save-direct", d, "save to");
    if (!answer) return tl::unexpected(answer.error());
    const auto &j = *answer;
    if (!j.contains("snapshot") || !j["snapshot"].is_object())
        return fail("'" + r.name + "' answered the save with something else");
    auto snap = store::parse_snapshot(j["snapshot"].dump());
    if (!snap) return tl::unexpected(snap.error());
    SaveResult res;
    res.snapshot = *snap;
    res.tree_unchanged = jsonr::boolean(j, "unchanged");
    res.stats.files = snap->files;
    res.stats.bytes = snap->bytes;
    res.stats.new_bytes = snap->new_bytes;
    res.stats.stored_bytes = snap->stored_bytes;
    res.stats.bytes_read = static_cast<std::uint64_t>(jsonr::integer(j, "bytes_read"));
    return res;
}

} // namespace berth
