// Where berth keeps its files on the user's machine, following the XDG base directories.
#pragma once

#include <filesystem>

namespace berth::paths {

// $HOME; "/" if unset (berth never guesses a home from the password database, which a
// static binary cannot read reliably).
std::filesystem::path home();

std::filesystem::path config_home(); // $XDG_CONFIG_HOME or ~/.config
std::filesystem::path data_home();   // $XDG_DATA_HOME or ~/.local/share
std::filesystem::path state_home();  // $XDG_STATE_HOME or ~/.local/state

// $BERTH_CONFIG or <config_home>/berth/config.toml
std::filesystem::path config_file();

// On a machine: where its agent keeps its files (Jupyter's port and token, the idle watcher's
// files). ~/.berth, or $BERTH_AGENT_DIR where several berth machines share one host and one
// home (an SSH host, a Slurm cluster's shared home): each its own directory.
std::filesystem::path agent_dir();

} // namespace berth::paths
