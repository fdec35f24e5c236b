#include "loader/testing_images.h"

#include <elf.h>

#include <algorithm>
#include <cstdlib>
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

std::vector<uint8_t> MakeMultibootElf(uint32_t paddr, uint32_t vaddr, uint32_t flags,
                                      std::vector<uint8_t> code, uint32_t file_size,
                                      uint32_t bss_size) {
  constexpr uint32_t kSegment = 0x60;  // File offset of the segment: after both headers.
  std::vector<uint8_t> v(kSegment + file_size, 0x90);
  std::fill(v.begin(), v.begin() + kSegment, 0);
  Elf32_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS32;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_386;
  eh.e_version = EV_CURRENT;
  eh.e_entry = vaddr + 12;
  eh.e_phoff = sizeof(Elf32_Ehdr);
  eh.e_ehsize = sizeof(Elf32_Ehdr);
  eh.e_phentsize = sizeof(Elf32_Phdr);
  eh.e_phnum = 1;
  Put(v, 0, eh);
  Elf32_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_offset = kSegment;
  ph.p_vaddr = vaddr;
  ph.p_paddr = paddr;
  ph.p_filesz = file_size;
  ph.p_memsz = file_size + bss_size;
  ph.p_flags = PF_R | PF_W | PF_X;
  ph.p_align = 0x1000;
  Put(v, sizeof(Elf32_Ehdr), ph);
  Put<uint32_t>(v, kSegment, 0x1badb002);
  Put<uint32_t>(v, kSegment + 4, flags);
  Put<uint32_t>(v, kSegment + 8, 0u - 0x1badb002u - flags);
  std::copy(code.begin(), code.end(), v.begin() + kSegment + 12);
  return v;
}

std::vector<uint8_t> MakeMultibootAout(uint32_t load_addr, uint32_t file_size, uint32_t bss_end) {
  constexpr uint32_t kHeader = 0x40;
  constexpr uint32_t kFlags = (1u << 16) | 0x2;
  std::vector<uint8_t> v(file_size, 0x90);
  std::fill(v.begin(), v.begin() + kHeader, 0);
  Put<uint32_t>(v, kHeader, 0x1badb002);
  Put<uint32_t>(v, kHeader + 4, kFlags);
  Put<uint32_t>(v, kHeader + 8, 0u - 0x1badb002u - kFlags);
  Put<uint32_t>(v, kHeader + 12, load_addr + kHeader);  // header_addr
  Put<uint32_t>(v, kHeader + 16, load_addr);            // load_addr
  Put<uint32_t>(v, kHeader + 20, 0);                    // load_end_addr: to the file's end
  Put<uint32_t>(v, kHeader + 24, bss_end);              // bss_end_addr
  Put<uint32_t>(v, kHeader + 28, load_addr + 0x60);     // entry_addr
  return v;
}

const GuestMemory& FuzzRam() {
  static const GuestMemory* memory = [] {
    auto m = GuestMemory::CreateRam({{GuestAddress(0), 32 << 20}},
                                    {.backing = GuestRegionBacking::kAnonymous});
    if (!m.ok()) std::abort();  // Cannot fuzz without memory.
    return new GuestMemory(std::move(m).value());
  }();
  return *memory;
}

void PatchImage(std::vector<uint8_t>& image, const uint8_t* data, size_t size, size_t window) {
  if (size < 2) return;
  const size_t at = (data[1] * 4u) % window;
  for (size_t i = 2; i < size && at + i - 2 < image.size(); ++i) image[at + i - 2] = data[i];
  if (data[1] & 1) image.resize(image.size() / (1 + data[1] % 7));
}

}  // namespace vmmkit::loader::testing
