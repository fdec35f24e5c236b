#include "loader/testing_images.h"

#include <elf.h>

#include <cstring>

namespace vmmkit::loader::testing {
namespace {

template <typename T>
void Put(std::vector<uint8_t>& v, size_t offset, T value) {
  std::memcpy(v.data() + offset, &value, sizeof(T));
}

}  // namespace

std::vector<uint8_t> MakeBzImage(uint32_t kernel_size, uint32_t init_size) {
  constexpr size_t kSetup = 2 * 512;  // Boot sector + 1 setup sector.
  std::vector<uint8_t> v(kSetup + kernel_size, 0);
  v[0x1f1] = 1;                               // setup_sects
  Put<uint32_t>(v, 0x1f4, kernel_size / 16);  // syssize
  Put<uint16_t>(v, 0x1fe, 0xaa55);            // boot_flag
  v[0x200] = 0xeb;                            // jmp short ...
  v[0x201] = 0x6a;                            // ... to 0x26c: the header ends there
  Put<uint32_t>(v, 0x202, 0x53726448);        // "HdrS"
  Put<uint16_t>(v, 0x206, 0x020f);            // protocol 2.15
  v[0x211] = 0x01;                            // loadflags: LOADED_HIGH
  Put<uint32_t>(v, 0x22c, 0x7fffffff);        // initrd_addr_max
  Put<uint32_t>(v, 0x230, 0x200000);          // kernel_alignment
  v[0x234] = 1;                               // relocatable_kernel
  Put<uint16_t>(v, 0x236, 0x3);               // xloadflags: KERNEL_64 | CAN_BE_LOADED_ABOVE_4G
  Put<uint32_t>(v, 0x238, 2047);              // cmdline_size
  Put<uint32_t>(v, 0x260, init_size);         // init_size
  std::memset(v.data() + kSetup, 0xcc, kernel_size);
  return v;
}

std::vector<uint8_t> MakeElf(uint64_t paddr, uint32_t file_size, uint32_t bss_size) {
  std::vector<uint8_t> v(sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr) + file_size, 0);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = paddr;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 1;
  Elf64_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_offset = sizeof(Elf64_Ehdr) + sizeof(Elf64_Phdr);
  ph.p_vaddr = 0xffffffff80000000ull + paddr;
  ph.p_paddr = paddr;
  ph.p_filesz = file_size;
  ph.p_memsz = uint64_t{file_size} + bss_size;
  std::memcpy(v.data(), &eh, sizeof(eh));
  std::memcpy(v.data() + sizeof(eh), &ph, sizeof(ph));
  std::memset(v.data() + ph.p_offset, 0x90, file_size);
  return v;
}

}  // namespace vmmkit::loader::testing
