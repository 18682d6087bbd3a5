// Just enough ELF to tell whether a binary runs without a dynamic loader.
#pragma once

#include "util/result.hpp"

#include <filesystem>

namespace berth::elf {

// True if the file is an ELF executable with no PT_INTERP (statically linked).
// Fails if the file cannot be read or is not 64-bit ELF.
Result<bool> is_static(const std::filesystem::path &p);

} // namespace berth::elf
