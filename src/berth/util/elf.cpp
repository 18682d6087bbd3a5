#include "util/elf.hpp"

#include "util/fs.hpp"

#include <cstring>
#include <elf.h>

namespace berth::elf {

Result<bool> is_static(const std::filesystem::path &p) {
    auto data = fs::read_file(p);
    if (!data) return tl::unexpected(data.error());
    const std::string &d = *data;
    if (d.size() < sizeof(Elf64_Ehdr) || std::memcmp(d.data(), ELFMAG, SELFMAG) != 0 ||
        d[EI_CLASS] != ELFCLASS64)
        return fail(p.string() + " is not a 64-bit ELF executable");
    Elf64_Ehdr eh;
    std::memcpy(&eh, d.data(), sizeof eh);
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        std::size_t off = eh.e_phoff + std::size_t(i) * eh.e_phentsize;
        if (off + sizeof(Elf64_Phdr) > d.size()) break;
        Elf64_Phdr ph;
        std::memcpy(&ph, d.data() + off, sizeof ph);
        if (ph.p_type == PT_INTERP) return false;
    }
    return true;
}

} // namespace berth::elf
