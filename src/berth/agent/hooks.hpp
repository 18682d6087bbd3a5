// Boot hooks: how a fresh machine runs `berth persist restore` before the user needs $HOME.
//
// Paperspace's fastai runtime *sources* /storage/pre-run.sh from /run.sh before starting
// Jupyter, as root. So the block berth writes there runs in a subshell, never exits, never
// fails the parent (`|| true`), and bounds its own time (restore gives up after
// `restore.timeout_s`). It also puts ~/.local/bin on PATH for Jupyter's terminals and kernels,
// which ~/.bashrc never reaches. The user's own lines are kept; berth's block sits between
// markers and goes first, so it migrates before any `rm -rf` loop (fastai's) can destroy data.
#pragma once

#include "agent/store.hpp"
#include "util/result.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace berth {

namespace stdfs = std::filesystem;

inline constexpr const char *k_block_begin = "# >>> berth >>>";
inline constexpr const char *k_block_end = "# <<< berth <<<";

// The shell lines inside berth's block.
std::string paperspace_block(const Store &store, const stdfs::path &binary);
std::string bashrc_block(const Store &store, const stdfs::path &binary);
std::string systemd_unit(const Store &store, const stdfs::path &binary, const stdfs::path &home,
                         bool system_wide);

// Puts block into text: replaces an existing berth block, or inserts it after the shebang
// (first) / at the end (last). Everything else in text is kept byte for byte.
std::string splice_block(const std::string &text, const std::string &block, bool first);
// Removes berth's block; text without one is returned unchanged.
std::string remove_block(const std::string &text);

// The static berth to copy onto a machine: this binary if it is static, else `berth-static`
// beside it, else $BERTH_STATIC_BINARY. Fails saying how to build one.
Result<stdfs::path> find_static_binary();

// Copies binary into <store>/.berth/bin/berth (temp name, fsync, verify hash, rename).
Result<stdfs::path> install_binary(const Store &store, const stdfs::path &binary);

struct HookReport {
    std::string file;
    bool changed = false;
    std::string binary;
    std::vector<std::string> notes;
};

enum class HookKind { paperspace, bashrc, systemd };

struct HookOptions {
    HookKind kind = HookKind::paperspace;
    stdfs::path target; // file (paperspace/bashrc) or unit directory (systemd); empty: default
    stdfs::path home;
};

Result<HookReport> hook_install(const Store &store, const HookOptions &opt);
Result<HookReport> hook_uninstall(const Store &store, const HookOptions &opt);

// Lines of a pre-run.sh that delete home paths (fastai's `rm -rf ~/$p`).
std::vector<std::string> destructive_lines(const std::string &script);

} // namespace berth
