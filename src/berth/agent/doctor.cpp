#include "agent/doctor.hpp"

#include "agent/hooks.hpp"
#include "agent/keys.hpp"
#include "agent/persist.hpp"
#include "core/cost.hpp"
#include "util/elf.hpp"
#include "util/fs.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"
#include "util/tree.hpp"

#include <algorithm>
#include <cstdio>
#include <sys/stat.h>

namespace berth {

namespace stdfs = std::filesystem;

const char *check_status_name(CheckStatus s) {
    switch (s) {
    case CheckStatus::ok:
        return "ok";
    case CheckStatus::info:
        return "info";
    case CheckStatus::warn:
        return "warn";
    case CheckStatus::fail:
        return "fail";
    }
    return "?";
}

double plan_quota_gb(const std::string &plan) {
    if (plan == "free") return 5;
    if (plan == "pro") return 15;
    if (plan == "growth") return 50;
    return 0;
}

std::vector<std::string> user_site_versions(const stdfs::path &home) {
    std::vector<std::string> out;
    std::error_code ec;
    auto lib = home / ".local/lib";
    if (!stdfs::is_directory(lib, ec)) return out;
    for (const auto &e : stdfs::directory_iterator(lib, ec)) {
        std::string n = e.path().filename();
        if (n.rfind("python", 0) != 0) continue;
        auto sp = e.path() / "site-packages";
        bool any = false;
        for (const auto &f : stdfs::directory_iterator(sp, ec))
            if (f.path().extension() == ".dist-info" || f.path().extension() == ".egg-info")
                any = true;
        if (any) out.push_back(n.substr(6));
    }
    std::sort(out.begin(), out.end());
    return out;
}

static std::vector<std::string> dist_names(const stdfs::path &site) {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto &f : stdfs::directory_iterator(site, ec)) {
        if (f.path().extension() != ".dist-info") continue;
        std::string stem = f.path().stem();
        out.push_back(stem.substr(0, stem.find('-')));
    }
    std::sort(out.begin(), out.end());
    return out;
}

static void check_links(const Store &store, const stdfs::path &home, std::vector<Check> &out) {
    auto st = persist_status(store, home);
    if (!st) {
        out.push_back({"links", CheckStatus::fail, st.error().what, "berth persist init"});
        return;
    }
    if (st->items.empty()) {
        out.push_back({"links", CheckStatus::fail, "nothing is persisted in " + store.root.string(),
                       "berth persist init --store " + store.root.string()});
        return;
    }
    std::vector<std::string> bad;
    for (const auto &i : st->items)
        if (i.state != ItemState::linked)
            bad.push_back("~/" + i.item.path + " " + state_name(i.state));
    if (bad.empty())
        out.push_back(
            {"links", CheckStatus::ok,
             std::to_string(st->items.size()) + " paths linked to " + store.cfg().string(), ""});
    else
        out.push_back({"links", CheckStatus::fail, str::join(bad, ", "), "berth persist restore"});
    if (st->pending_journals)
        out.push_back({"journal", CheckStatus::fail,
                       std::to_string(st->pending_journals) + " interrupted migration(s)",
                       "berth persist restore"});
}

static void check_ssh(const stdfs::path &home, std::vector<Check> &out) {
    auto dir = home / ".ssh";
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        out.push_back({"ssh-key", CheckStatus::warn, "no ~/.ssh: no SSH key for GitHub",
                       "berth keys generate"});
        return;
    }
    std::vector<std::string> wrong;
    if ((st.st_mode & 077) != 0)
        wrong.push_back("~/.ssh is " + std::to_string((st.st_mode & 0777)));
    std::error_code ec;
    for (const auto &e : stdfs::directory_iterator(dir, ec)) {
        struct stat fs_st {};
        if (::lstat(e.path().c_str(), &fs_st) != 0 || !S_ISREG(fs_st.st_mode)) continue;
        auto text = fs::read_file(e.path());
        if (text && classify_key_text(*text) == KeyText::private_key && (fs_st.st_mode & 077)) {
            char m[8];
            std::snprintf(m, sizeof m, "%o", fs_st.st_mode & 0777);
            wrong.push_back(e.path().filename().string() + " is " + m);
        }
    }
    if (!wrong.empty())
        out.push_back({"ssh-perms", CheckStatus::fail,
                       "SSH refuses keys others can read: " + str::join(wrong, ", "),
                       "berth persist restore   (or: chmod 700 ~/.ssh; chmod 600 ~/.ssh/id_*)"});
    else
        out.push_back({"ssh-perms", CheckStatus::ok, "~/.ssh permissions are strict", ""});
    auto keys = keys_list(dir);
    if (keys && !keys->empty())
        out.push_back({"ssh-key", CheckStatus::ok,
                       std::to_string(keys->size()) + " key(s), e.g. " + (*keys)[0].name + " " +
                           (*keys)[0].fingerprint,
                       ""});
    else
        out.push_back(
            {"ssh-key", CheckStatus::warn, "no SSH key in ~/.ssh", "berth keys generate"});
}

static void check_hook(const Store &store, std::vector<Check> &out) {
    auto pre = store.root / "pre-run.sh";
    auto text = fs::read_file(pre);
    bool paperspace = store.root == "/storage" || stdfs::exists("/run.sh");
    if (!text || !str::contains(*text, k_block_begin)) {
        out.push_back({"boot-hook", paperspace ? CheckStatus::fail : CheckStatus::info,
                       pre.string() + " does not run berth at boot" +
                           (paperspace ? "" : " (needed on Paperspace only)"),
                       "berth hook install --paperspace --store " + store.root.string()});
    } else {
        auto s = elf::is_static(store.bin());
        if (!s || !*s)
            out.push_back({"boot-hook", CheckStatus::fail,
                           store.bin().string() + " is missing or not a static binary",
                           "berth hook install --paperspace --store " + store.root.string()});
        else
            out.push_back({"boot-hook", CheckStatus::ok, pre.string() + " restores at boot", ""});
    }
    if (text)
        for (const auto &l : destructive_lines(*text))
            out.push_back({"boot-hook-rm", CheckStatus::warn,
                           pre.string() + " deletes data at every boot: " + l,
                           "remove that line; berth's block links without deleting"});
}

static void check_path(const DoctorInput &in, std::vector<Check> &out) {
    auto want = (in.home / ".local/bin").string();
    bool on = false;
    for (const auto &p : str::split(in.path_env, ':'))
        if (p == want || p == want + "/") on = true;
    if (on)
        out.push_back({"path", CheckStatus::ok, "~/.local/bin is on PATH", ""});
    else
        out.push_back(
            {"path", CheckStatus::warn,
             "~/.local/bin is not on PATH: commands from `pip install --user` are not found",
             "export PATH=\"$HOME/.local/bin:$PATH\"   (berth hook install adds it at boot)"});
}

static void check_python(const DoctorInput &in, std::vector<Check> &out) {
    auto versions = user_site_versions(in.home);
    if (versions.empty() || in.python.empty()) return;
    auto r = proc::run({in.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"});
    if (!r || r->status != 0) {
        out.push_back(
            {"python", CheckStatus::info, "python3 not found; skipped the user-site check", ""});
        return;
    }
    std::string cur = str::trim(r->out);
    std::vector<std::string> stale;
    for (const auto &v : versions)
        if (v != cur) stale.push_back(v);
    if (stale.empty()) {
        out.push_back({"python", CheckStatus::ok, "user packages match Python " + cur, ""});
        return;
    }
    auto site = in.home / (".local/lib/python" + stale.back()) / "site-packages";
    auto names = dist_names(site);
    out.push_back(
        {"python", CheckStatus::warn,
         "packages installed with `pip install --user` under Python " + str::join(stale, ", ") +
             " are invisible to Python " + cur + " (" + std::to_string(names.size()) + ": " +
             str::join(std::vector<std::string>(
                           names.begin(), names.begin() + std::min<std::size_t>(names.size(), 5)),
                       ", ") +
             (names.size() > 5 ? ", ..." : "") + ")",
         in.python + " -m pip install --user " + str::join(names, " ")});
}

static void check_quota(const DoctorInput &in, const Store &store, std::vector<Check> &out) {
    const Config &c = *in.config;
    double quota = c.str("quota_gb").empty() ? plan_quota_gb(c.str("plan")) : c.number("quota_gb");
    std::uint64_t used = 0;
    auto s = tree::stats(store.root);
    if (s) used += s->disk;
    stdfs::path nb = c.str("notebooks_dir");
    std::error_code ec;
    if (!nb.empty() && stdfs::is_directory(nb, ec) && !fs::is_within(nb, store.root))
        if (auto n = tree::stats(nb)) used += n->disk;
    double gb = static_cast<double>(used) / 1e9;
    if (quota <= 0) {
        out.push_back({"quota", CheckStatus::info,
                       "using " + str::human_bytes(used) + " (no quota set)", ""});
        return;
    }
    double over = cost::overage_per_month(gb, quota, c.number("storage_overage_per_gb_month"));
    char msg[256];
    std::snprintf(msg, sizeof msg, "store + %s use %.2f GB of %.0f GB (%s plan)%s", nb.c_str(), gb,
                  quota, c.str("plan").c_str(), over > 0 ? "" : "");
    if (over > 0) {
        char extra[96];
        std::snprintf(extra, sizeof extra, ": %.2f GB over, $%.2f per month", gb - quota, over);
        out.push_back(
            {"quota", CheckStatus::warn, std::string(msg) + extra,
             "berth persist status   (see what is large; or berth config set plan growth)"});
    } else if (gb > 0.9 * quota) {
        out.push_back({"quota", CheckStatus::warn, std::string(msg) + ": over 90%",
                       "berth persist status   (see what is large)"});
    } else {
        out.push_back({"quota", CheckStatus::ok, msg, ""});
    }
}

std::vector<Check> run_doctor(const DoctorInput &in) {
    std::vector<Check> out;
    auto store = find_store(in.store);
    if (!store) {
        out.push_back(
            {"store", CheckStatus::fail, store.error().what, "berth persist init --store DIR"});
    } else if (auto w = fs::probe_writable(store->root); !w) {
        out.push_back({"store", CheckStatus::fail, w.error().what,
                       "mount it read-write or pass --store DIR"});
    } else {
        out.push_back({"store", CheckStatus::ok, store->root.string() + " is writable", ""});
        check_links(*store, in.home, out);
        check_hook(*store, out);
    }
    check_ssh(in.home, out);
    check_path(in, out);
    check_python(in, out);
    if (store) check_quota(in, *store, out);
    return out;
}

} // namespace berth
