#include "agent/hooks.hpp"

#include "util/elf.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/process.hpp"
#include "util/strings.hpp"

#include <cerrno>
#include <cstdlib>
#include <sys/stat.h>
#include <unistd.h>

namespace berth {

namespace {

std::string q(const stdfs::path &p) {
    return str::shell_quote(p.string());
}

std::string wrap(const std::string &body) {
    return std::string(k_block_begin) +
           " managed by `berth hook install`; lines outside this block are yours\n" + body +
           k_block_end + "\n";
}

stdfs::path self_exe() {
    std::error_code ec;
    auto p = stdfs::read_symlink("/proc/self/exe", ec);
    return ec ? stdfs::path() : p;
}

} // namespace

std::string paperspace_block(const Store &store, const stdfs::path &binary) {
    // Sourced by /run.sh: a subshell keeps cd/set/exit from leaking, `|| true` keeps a failure
    // from stopping Jupyter, </dev/null keeps it from waiting on input.
    std::string b = "if [ -x " + q(binary) +
                    " ]; then\n"
                    "  ( " +
                    q(binary) + " persist restore --store " + q(store.root) +
                    " --home \"${HOME:-/root}\" </dev/null ) || true\n"
                    "fi\n"
                    "case \":$PATH:\" in *\":${HOME:-/root}/.local/bin:\"*) ;; "
                    "*) export PATH=\"${HOME:-/root}/.local/bin:$PATH\" ;; esac\n";
    return wrap(b);
}

std::string bashrc_block(const Store &store, const stdfs::path &binary) {
    std::string b = "if [ -x " + q(binary) +
                    " ] && [ -z \"${BERTH_RESTORED:-}\" ]; then\n"
                    "  ( " +
                    q(binary) + " persist restore --store " + q(store.root) +
                    " --home \"$HOME\" </dev/null ) || true\n"
                    "  export BERTH_RESTORED=1\n"
                    "fi\n"
                    "case \":$PATH:\" in *\":$HOME/.local/bin:\"*) ;; "
                    "*) export PATH=\"$HOME/.local/bin:$PATH\" ;; esac\n";
    return wrap(b);
}

std::string systemd_unit(const Store &store, const stdfs::path &binary, const stdfs::path &home,
                         bool system_wide) {
    return "# managed by `berth hook install --systemd`\n"
           "[Unit]\n"
           "Description=berth: link persisted paths in " +
           home.string() + " to " + store.root.string() +
           "\n"
           "RequiresMountsFor=" +
           store.root.string() +
           "\n"
           "\n[Service]\n"
           "Type=oneshot\n"
           "Environment=HOME=" +
           home.string() +
           "\n"
           "ExecStart=" +
           binary.string() + " persist restore --store " + store.root.string() + " --home " +
           home.string() +
           "\n"
           "TimeoutStartSec=120\n"
           "\n[Install]\n"
           "WantedBy=" +
           (system_wide ? "multi-user.target" : "default.target") + "\n";
}

std::string remove_block(const std::string &text) {
    auto b = text.find(k_block_begin);
    if (b == std::string::npos) return text;
    auto e = text.find(k_block_end, b);
    if (e == std::string::npos) return text;
    e += std::string(k_block_end).size();
    if (e < text.size() && text[e] == '\n') ++e;
    return text.substr(0, b) + text.substr(e);
}

std::string splice_block(const std::string &text, const std::string &block, bool first) {
    auto b = text.find(k_block_begin);
    if (b != std::string::npos && text.find(k_block_end, b) != std::string::npos) {
        std::string rest = remove_block(text);
        return rest.substr(0, b) + block + rest.substr(b);
    }
    if (!first) {
        std::string out = text;
        if (!out.empty() && out.back() != '\n') out += '\n';
        return out + block;
    }
    if (text.rfind("#!", 0) == 0) {
        auto nl = text.find('\n');
        if (nl == std::string::npos) return text + "\n" + block;
        return text.substr(0, nl + 1) + block + text.substr(nl + 1);
    }
    return "#!/usr/bin/env bash\n" + block + text;
}

std::vector<std::string> destructive_lines(const std::string &script) {
    std::vector<std::string> out;
    bool in_block = false;
    for (const auto &line : str::split(remove_block(script), '\n')) {
        (void)in_block;
        auto t = str::trim(line);
        if (t.rfind("#", 0) == 0) continue;
        if (str::contains(t, "rm -rf") || str::contains(t, "rm -fr") || str::contains(t, "rm -r "))
            if (str::contains(t, "~") || str::contains(t, "$HOME") || str::contains(t, "/root"))
                out.push_back(t);
    }
    return out;
}

Result<stdfs::path> find_static_binary() {
    std::vector<stdfs::path> cands;
    if (const char *e = std::getenv("BERTH_STATIC_BINARY"); e && *e) cands.emplace_back(e);
    auto self = self_exe();
    if (!self.empty()) {
        cands.push_back(self);
        cands.push_back(self.parent_path() / "berth-static");
        cands.push_back(self.parent_path().parent_path() / "libexec" / "berth" / "berth-static");
    }
    for (const auto &c : cands) {
        auto s = elf::is_static(c);
        if (s && *s) return c;
    }
    return fail(
        "no static berth binary found (this one needs shared libraries a fresh machine may lack)",
        "build the berth-static target, or set BERTH_STATIC_BINARY");
}

Result<stdfs::path> install_binary(const Store &store, const stdfs::path &binary) {
    auto dest = store.bin();
    BERTH_TRY(fs::make_dirs(dest.parent_path()));
    auto want = sha256_file(binary);
    if (!want) return tl::unexpected(want.error());
    if (auto have = sha256_file(dest); have && *have == *want) return dest;
    auto data = fs::read_file(binary);
    if (!data) return tl::unexpected(data.error());
    BERTH_TRY(fs::write_file_atomic(dest, *data, 0755));
    auto got = sha256_file(dest);
    if (!got || *got != *want)
        return fail("the copy of berth in " + dest.string() + " does not match",
                    "rerun; check the disk");
    return dest;
}

static stdfs::path default_target(const Store &store, const HookOptions &opt) {
    if (!opt.target.empty()) return opt.target;
    switch (opt.kind) {
    case HookKind::paperspace:
        return store.root / "pre-run.sh";
    case HookKind::bashrc:
        return opt.home / ".bashrc";
    case HookKind::systemd:
        return ::geteuid() == 0 ? stdfs::path("/etc/systemd/system")
                                : opt.home / ".config/systemd/user";
    }
    return {};
}

static Result<bool> write_if_changed(const stdfs::path &file, const std::string &text,
                                     mode_t mode) {
    auto old = fs::read_file(file);
    if (old && *old == text) return false;
    BERTH_TRY(fs::make_dirs(file.parent_path()));
    BERTH_TRY(fs::write_file_atomic(file, text, mode));
    return true;
}

Result<HookReport> hook_install(const Store &store, const HookOptions &opt) {
    BERTH_TRY(store.prepare());
    auto bin = find_static_binary();
    if (!bin) return tl::unexpected(bin.error());
    auto installed = install_binary(store, *bin);
    if (!installed) return tl::unexpected(installed.error());
    HookReport rep;
    rep.binary = installed->string();
    auto target = default_target(store, opt);
    if (opt.kind == HookKind::systemd) {
        bool sys = target == "/etc/systemd/system";
        auto unit = target / "berth-restore.service";
        auto ch = write_if_changed(unit, systemd_unit(store, *installed, opt.home, sys), 0644);
        if (!ch) return tl::unexpected(ch.error());
        rep.file = unit.string();
        rep.changed = *ch;
        std::vector<std::string> enable = {"systemctl"};
        if (!sys) enable.push_back("--user");
        enable.insert(enable.end(), {"enable", "berth-restore.service"});
        if (stdfs::exists("/run/systemd/system") && opt.target.empty()) {
            auto r = proc::run(enable);
            if (r && r->status == 0)
                rep.notes.push_back("enabled berth-restore.service");
            else
                rep.notes.push_back("enable it with `" + str::join(enable, " ") + "`");
        } else {
            rep.notes.push_back("systemd is not running here; on the machine run `" +
                                str::join(enable, " ") + "`");
        }
        return rep;
    }
    auto old = fs::read_file(target);
    std::string text = old ? *old : std::string();
    bool paperspace = opt.kind == HookKind::paperspace;
    std::string block =
        paperspace ? paperspace_block(store, *installed) : bashrc_block(store, *installed);
    auto ch =
        write_if_changed(target, splice_block(text, block, paperspace), paperspace ? 0755 : 0644);
    if (!ch) return tl::unexpected(ch.error());
    rep.file = target.string();
    rep.changed = *ch;
    for (const auto &l : destructive_lines(text))
        rep.notes.push_back("this line deletes data at every boot, remove it: " + l);
    return rep;
}

Result<HookReport> hook_uninstall(const Store &store, const HookOptions &opt) {
    HookReport rep;
    auto target = default_target(store, opt);
    if (opt.kind == HookKind::systemd) target /= "berth-restore.service";
    rep.file = target.string();
    auto old = fs::read_file(target);
    if (!old) return rep;
    if (opt.kind == HookKind::systemd) {
        if (::unlink(target.c_str()) != 0) return fail_errno(target.string(), errno);
        rep.changed = true;
        return rep;
    }
    auto text = remove_block(*old);
    if (text != *old) {
        BERTH_TRY(
            fs::write_file_atomic(target, text, opt.kind == HookKind::paperspace ? 0755 : 0644));
        rep.changed = true;
    }
    return rep;
}

} // namespace berth
