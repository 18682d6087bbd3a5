// berth hook install|uninstall
#include "agent/hooks.hpp"
#include "cli/commands.hpp"

namespace berth::cli {

namespace {

struct HookFlags {
    bool paperspace = false, bashrc = false, systemd = false;
    std::string target;
};

HookOptions options(Context &ctx, const HookFlags &f) {
    int n = f.paperspace + f.bashrc + f.systemd;
    if (n != 1) throw Abort(Error{"choose one of --paperspace, --bashrc, --systemd", "", 2});
    HookOptions o;
    o.kind = f.paperspace ? HookKind::paperspace : f.bashrc ? HookKind::bashrc : HookKind::systemd;
    o.target = f.target;
    o.home = ctx.home();
    return o;
}

void print(Context &ctx, const HookReport &r, const char *schema, const char *verb) {
    if (ctx.json) {
        print_json({{"schema", schema},
                    {"file", r.file},
                    {"changed", r.changed},
                    {"binary", r.binary},
                    {"notes", r.notes}});
        return;
    }
    say(std::string(r.changed ? verb : "unchanged") + ": " + r.file);
    if (!r.binary.empty()) say("berth for the boot hook: " + r.binary);
    for (const auto &n : r.notes)
        warn(n);
}

} // namespace

void add_hook(CLI::App &app, Context &ctx) {
    auto *h = command(app, "hook");
    h->require_subcommand(1);
    static HookFlags f;
    for (auto *sub : {subcommand(*h, "hook", "install"), subcommand(*h, "hook", "uninstall")}) {
        sub->add_flag("--paperspace", f.paperspace,
                      "<store>/pre-run.sh, sourced by the fastai runtime");
        sub->add_flag("--bashrc", f.bashrc, "~/.bashrc, for machines where home survives");
        sub->add_flag("--systemd", f.systemd, "a oneshot systemd unit");
        sub->add_option("--target", f.target,
                        "file (or unit directory) to write instead of the default");
    }
    h->get_subcommand("install")->callback([&ctx] {
        auto store = must(find_store(ctx.store_setting()));
        print(ctx, must(hook_install(store, options(ctx, f))), "berth.hook.install/1", "installed");
    });
    h->get_subcommand("uninstall")->callback([&ctx] {
        auto store = must(find_store(ctx.store_setting()));
        print(ctx, must(hook_uninstall(store, options(ctx, f))), "berth.hook.uninstall/1",
              "removed");
    });
}

} // namespace berth::cli
