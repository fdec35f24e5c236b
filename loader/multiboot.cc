#include "loader/multiboot.h"

#include <elf.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "loader/image.h"

namespace vmmkit::loader {
namespace {

constexpr size_t kSearchLimit = 8192;       // The header lies in the image's first 8 KiB.
constexpr uint32_t kKnownRequired = 0x7;    // Bits 0-2: page-aligned modules, memory, video.
constexpr uint32_t kRequiredMask = 0xffff;  // Bits 0-15 are requirements.
constexpr uint32_t kAddressFields = 1u << 16;
constexpr uint64_t kPage = 4096;
constexpr uint64_t kLowestLoad = 1 << 20;
constexpr uint64_t k4GiB = uint64_t{1} << 32;
constexpr size_t kMaxE820 = 128;
constexpr size_t kMaxSegments = 64;
constexpr char kLoaderName[] = "vmmkit";

// The information structure up to the VBE fields (Multiboot 0.6.96, 3.3): 88 bytes, as QEMU's.
struct Mbi {
  uint32_t flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length, mmap_addr, drives_length, drives_addr, config_table, boot_loader_name;
  uint32_t apm_table;
  uint32_t vbe[4];
};
static_assert(sizeof(Mbi) == 88);
static_assert(offsetof(Mbi, cmdline) == 16 && offsetof(Mbi, mmap_length) == 44 &&
              offsetof(Mbi, boot_loader_name) == 64);

struct MbiModule {
  uint32_t start, end, string, reserved;
};
static_assert(sizeof(MbiModule) == 16);

// A memory map entry; `size` (20) does not count itself.
struct __attribute__((packed)) MmapEntry {
  uint32_t size;
  uint64_t base, length;
  uint32_t type;
};
static_assert(sizeof(MmapEntry) == 24);

// Where each part goes in the information page.
constexpr uint64_t kModuleOffset = 0x60, kMmapOffset = 0x80;
static_assert(kMmapOffset + kMaxE820 * sizeof(MmapEntry) <= kPage);

absl::Status Invalid(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("multiboot kernel image: ", what));
}

std::optional<size_t> FindHeader(absl::Span<const uint8_t> data) {
  const size_t limit = std::min(data.size(), kSearchLimit);
  for (size_t off = 0; off + 12 <= limit; off += 4) {
    const uint32_t magic = Field<uint32_t>(data, off);
    if (magic != kMultibootHeaderMagic) continue;
    if (magic + Field<uint32_t>(data, off + 4) + Field<uint32_t>(data, off + 8) == 0) return off;
  }
  return std::nullopt;
}

bool IsElf(absl::Span<const uint8_t> data, uint8_t elf_class) {
  return data.size() >= EI_NIDENT && std::memcmp(data.data(), ELFMAG, SELFMAG) == 0 &&
         data[EI_CLASS] == elf_class;
}

struct Plan {
  std::vector<Chunk> chunks;
  uint64_t entry = 0, start = 0, end = 0;
};

// Flags bit 16: the header's address fields say what to load where.
absl::StatusOr<Plan> PlanAddressFields(absl::Span<const uint8_t> data, size_t off) {
  if (off + 32 > data.size()) {
    return Invalid(absl::StrCat("the header at ", Hex(off),
                                " sets flags bit 16 but the file ends before its address fields"));
  }
  const uint32_t header_addr = Field<uint32_t>(data, off + 12);
  const uint32_t load_addr = Field<uint32_t>(data, off + 16);
  const uint32_t load_end_addr = Field<uint32_t>(data, off + 20);
  const uint32_t bss_end_addr = Field<uint32_t>(data, off + 24);
  const uint32_t entry_addr = Field<uint32_t>(data, off + 28);
  if (load_addr > header_addr) {
    return Invalid(
        absl::StrCat("load_addr ", Hex(load_addr), " is above header_addr ", Hex(header_addr)));
  }
  if (header_addr - load_addr > off) {
    return Invalid(absl::StrCat("header_addr ", Hex(header_addr), " - load_addr ", Hex(load_addr),
                                " reaches before the file's start (the header is at ", Hex(off),
                                ")"));
  }
  const uint64_t text_offset = off - (header_addr - load_addr);
  uint64_t load_size = data.size() - text_offset;
  if (load_end_addr != 0) {
    if (load_end_addr < load_addr) {
      return Invalid(absl::StrCat("load_end_addr ", Hex(load_end_addr), " is below load_addr ",
                                  Hex(load_addr)));
    }
    load_size = load_end_addr - load_addr;
    if (text_offset + load_size > data.size()) {
      return Invalid(absl::StrCat("load_end_addr ", Hex(load_end_addr), " needs ", load_size,
                                  " bytes of the file from ", Hex(text_offset), "; it has ",
                                  data.size() - text_offset));
    }
  }
  Plan plan{.entry = entry_addr, .start = load_addr, .end = load_addr + load_size};
  if (plan.end > k4GiB) {
    return Invalid(absl::StrCat("the image (", load_size, " bytes from load_addr ", Hex(load_addr),
                                ") reaches beyond 4 GiB"));
  }
  uint64_t zero_fill = 0;
  if (bss_end_addr != 0) {
    if (bss_end_addr < plan.end) {
      return Invalid(absl::StrCat("bss_end_addr ", Hex(bss_end_addr),
                                  " is below the loaded image's end ", Hex(plan.end)));
    }
    zero_fill = bss_end_addr - plan.end;
    plan.end = bss_end_addr;
  }
  plan.chunks.push_back({GuestAddress(load_addr), data.subspan(text_offset, load_size), zero_fill});
  return plan;
}

// An ELF32 for i386: PT_LOAD segments at their physical addresses.
absl::StatusOr<Plan> PlanElf32(absl::Span<const uint8_t> data) {
  if (data.size() < sizeof(Elf32_Ehdr)) return Invalid("truncated ELF header");
  Elf32_Ehdr eh;
  std::memcpy(&eh, data.data(), sizeof(eh));
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_386 || eh.e_type != ET_EXEC) {
    return Invalid(absl::StrCat("an ELF32 of type ", eh.e_type, " for machine ", eh.e_machine,
                                ": a Multiboot ELF is a little-endian i386 executable (", ET_EXEC,
                                ", ", EM_386, ")"));
  }
  if (eh.e_phentsize != sizeof(Elf32_Phdr) || eh.e_phnum == 0 || eh.e_phnum > kMaxSegments ||
      uint64_t{eh.e_phoff} + uint64_t{eh.e_phnum} * sizeof(Elf32_Phdr) > data.size()) {
    return Invalid(absl::StrCat("program headers (", eh.e_phnum, " of ", eh.e_phentsize,
                                " bytes at ", Hex(eh.e_phoff), ") do not fit the file or the ",
                                kMaxSegments, "-segment limit"));
  }
  Plan plan{.start = k4GiB, .end = 0};
  std::optional<uint64_t> entry;
  for (size_t i = 0; i < eh.e_phnum; ++i) {
    Elf32_Phdr ph;
    std::memcpy(&ph, data.data() + eh.e_phoff + i * sizeof(ph), sizeof(ph));
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_filesz > ph.p_memsz || uint64_t{ph.p_offset} + ph.p_filesz > data.size() ||
        uint64_t{ph.p_paddr} + ph.p_memsz > k4GiB) {
      return Invalid(absl::StrCat("segment ", i, " (", ph.p_filesz, " of ", ph.p_memsz,
                                  " bytes from file offset ", Hex(ph.p_offset), " to ",
                                  Hex(ph.p_paddr), ") does not fit the file or 4 GiB"));
    }
    plan.chunks.push_back({GuestAddress(ph.p_paddr), data.subspan(ph.p_offset, ph.p_filesz),
                           ph.p_memsz - ph.p_filesz});
    plan.start = std::min<uint64_t>(plan.start, ph.p_paddr);
    plan.end = std::max<uint64_t>(plan.end, uint64_t{ph.p_paddr} + ph.p_memsz);
    // An entry given as a virtual address in a segment linked elsewhere is moved with it.
    if ((ph.p_flags & PF_X) && ph.p_vaddr != ph.p_paddr && eh.e_entry >= ph.p_vaddr &&
        eh.e_entry - ph.p_vaddr < ph.p_filesz) {
      entry = uint64_t{eh.e_entry} - ph.p_vaddr + ph.p_paddr;
    }
  }
  if (plan.chunks.empty()) return Invalid("the ELF has no loadable segment");
  plan.entry = entry.value_or(eh.e_entry);
  return plan;
}

// mem_lower: KiB of RAM from 0 (at most 640); mem_upper: KiB of RAM from 1 MiB up to the first
// hole (below 4 GiB).
std::pair<uint32_t, uint32_t> MemoryBounds(absl::Span<const E820Entry> e820) {
  uint64_t lower = 0, upper = 0;
  for (const E820Entry& e : e820) {
    if (e.type != E820Type::kRam) continue;
    if (e.address == 0) lower = std::min<uint64_t>(e.size, 640 << 10);
    if (e.address <= kLowestLoad && e.address + e.size > kLowestLoad) {
      upper = std::min(e.address + e.size, k4GiB) - kLowestLoad;
    }
  }
  return {static_cast<uint32_t>(lower >> 10), static_cast<uint32_t>(upper >> 10)};
}

}  // namespace

bool IsMultiboot(absl::Span<const uint8_t> kernel) {
  return !IsElf(kernel, ELFCLASS64) && FindHeader(kernel).has_value();
}

absl::StatusOr<MultibootBootInfo> LoadMultiboot(const GuestMemory& memory,
                                                const MultibootConfig& config) {
  const absl::Span<const uint8_t> data = config.kernel;
  if (IsElf(data, ELFCLASS64)) {
    return Invalid("a 64-bit ELF: Multiboot kernels are ELF32 (objcopy -O elf32-i386)");
  }
  const std::optional<size_t> off = FindHeader(data);
  if (!off) {
    return Invalid(absl::StrCat("no header (magic ", Hex(kMultibootHeaderMagic),
                                " with a valid checksum, 4-byte aligned) in the first 8 KiB"));
  }
  const uint32_t flags = Field<uint32_t>(data, *off + 4);
  if (const uint32_t unknown = flags & kRequiredMask & ~kKnownRequired; unknown != 0) {
    return Invalid(absl::StrCat("the header requires flags ", Hex(unknown),
                                ", which vmm does not know (it knows bits 0-2 and 16)"));
  }
  absl::StatusOr<Plan> planned;
  if (flags & kAddressFields) {
    planned = PlanAddressFields(data, *off);
  } else if (IsElf(data, ELFCLASS32)) {
    planned = PlanElf32(data);
  } else {
    return Invalid("neither an ELF32 nor a header with address fields (flags bit 16)");
  }
  RETURN_IF_ERROR(planned.status());
  const Plan& plan = *planned;
  if (plan.start < kLowestLoad) {
    return Invalid(absl::StrCat("it loads at ", Hex(plan.start),
                                ", below 1 MiB, where vmm keeps the boot information"));
  }
  if (plan.entry < plan.start || plan.entry >= plan.end) {
    return Invalid(absl::StrCat("the entry ", Hex(plan.entry), " lies outside the image [",
                                Hex(plan.start), ", ", Hex(plan.end), ")"));
  }

  // Validate everything before writing anything.
  RETURN_IF_ERROR(RequireRam(memory, GuestAddress(plan.start), plan.end - plan.start, "kernel"));
  if (config.e820.size() > kMaxE820) {
    return absl::InvalidArgumentError(absl::StrCat("e820 map has ", config.e820.size(),
                                                   " entries; the memory map holds ", kMaxE820));
  }
  for (const E820Entry& e : config.e820) {
    if (!RangeLast(e.address, e.size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("e820 entry at ", Hex(e.address), " has a zero size or wraps past 2^64"));
    }
  }
  if (config.cmdline.find('\0') != std::string::npos ||
      config.module_string.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("kernel command line or module string contains a NUL byte");
  }
  std::string strings = absl::StrCat(config.cmdline, std::string(1, '\0'), config.module_string,
                                     std::string(1, '\0'), kLoaderName, std::string(1, '\0'));
  if (strings.size() > config.strings_max) {
    return absl::InvalidArgumentError(absl::StrCat("kernel command line and module string take ",
                                                   strings.size(), " bytes; at most ",
                                                   config.strings_max, " fit"));
  }
  RETURN_IF_ERROR(RequireRam(memory, config.strings_address, strings.size(), "command line"));
  RETURN_IF_ERROR(RequireRam(memory, config.info_address, kPage, "Multiboot information"));
  if (config.strings_address.raw() + strings.size() > k4GiB ||
      config.info_address.raw() + kPage > k4GiB) {
    return absl::InvalidArgumentError("the boot information must lie below 4 GiB");
  }
  std::optional<GuestAddress> module;
  if (config.module) {
    const uint64_t at = (plan.end + kPage - 1) & ~(kPage - 1);
    if (config.module->size() > k4GiB || at + config.module->size() > k4GiB) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "module of ", config.module->size(), " bytes at ", Hex(at), " reaches beyond 4 GiB"));
    }
    RETURN_IF_ERROR(RequireRam(memory, GuestAddress(at), config.module->size(), "module"));
    module = GuestAddress(at);
  }

  // Write.
  RETURN_IF_ERROR(WriteChunks(memory, plan.chunks));
  if (module) RETURN_IF_ERROR(memory.Write(*module, *config.module));
  RETURN_IF_ERROR(memory.Write(
      config.strings_address,
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(strings.data()), strings.size())));
  const auto strings_at = [&](size_t offset) {
    return static_cast<uint32_t>(config.strings_address.raw() + offset);
  };
  const uint64_t info = config.info_address.raw();
  const auto [mem_lower, mem_upper] = MemoryBounds(config.e820);
  Mbi mbi{};
  mbi.flags = kMbiMemory | kMbiCmdline | kMbiModules | kMbiMemoryMap | kMbiLoaderName;
  mbi.mem_lower = mem_lower;
  mbi.mem_upper = mem_upper;
  mbi.cmdline = strings_at(0);
  mbi.mods_count = module ? 1 : 0;
  mbi.mods_addr = static_cast<uint32_t>(info + kModuleOffset);
  mbi.mmap_length = static_cast<uint32_t>(config.e820.size() * sizeof(MmapEntry));
  mbi.mmap_addr = static_cast<uint32_t>(info + kMmapOffset);
  mbi.boot_loader_name = strings_at(config.cmdline.size() + config.module_string.size() + 2);
  RETURN_IF_ERROR(memory.WriteObj(config.info_address, mbi));
  if (module) {
    const MbiModule m{.start = static_cast<uint32_t>(module->raw()),
                      .end = static_cast<uint32_t>(module->raw() + config.module->size()),
                      .string = strings_at(config.cmdline.size() + 1),
                      .reserved = 0};
    RETURN_IF_ERROR(memory.WriteObj(GuestAddress(info + kModuleOffset), m));
  }
  for (size_t i = 0; i < config.e820.size(); ++i) {
    const E820Entry& e = config.e820[i];
    const MmapEntry entry{.size = sizeof(MmapEntry) - 4,
                          .base = e.address,
                          .length = e.size,
                          .type = static_cast<uint32_t>(e.type)};
    RETURN_IF_ERROR(
        memory.WriteObj(GuestAddress(info + kMmapOffset + i * sizeof(MmapEntry)), entry));
  }
  return MultibootBootInfo{.entry = GuestAddress(plan.entry),
                           .info = config.info_address,
                           .kernel_start = GuestAddress(plan.start),
                           .kernel_end = plan.end,
                           .module = module};
}

}  // namespace vmmkit::loader
