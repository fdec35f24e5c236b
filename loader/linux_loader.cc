#include "loader/linux_loader.h"

#include <asm/bootparam.h>
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

// The zero page layout, pinned (arch/x86/include/uapi/asm/bootparam.h).
static_assert(sizeof(boot_params) == 4096);
static_assert(offsetof(boot_params, acpi_rsdp_addr) == 0x070);
static_assert(offsetof(boot_params, e820_entries) == 0x1e8);
static_assert(offsetof(boot_params, hdr) == 0x1f1);
static_assert(offsetof(boot_params, e820_table) == 0x2d0);
static_assert(sizeof(boot_e820_entry) == 20);

// Setup header fields, as offsets into the bzImage file (== offsets into boot_params).
constexpr size_t kSetupSects = 0x1f1;
constexpr size_t kSysSize = 0x1f4;
constexpr size_t kBootFlag = 0x1fe;
constexpr size_t kJump = 0x200;
constexpr size_t kHeaderMagic = 0x202;
constexpr size_t kVersion = 0x206;
constexpr size_t kLoadFlags = 0x211;
constexpr size_t kInitrdAddrMax = 0x22c;
constexpr size_t kXLoadFlags = 0x236;
constexpr size_t kCmdlineSize = 0x238;
constexpr size_t kInitSize = 0x260;

constexpr uint32_t kHdrS = 0x53726448;  // "HdrS"
constexpr uint16_t kBootFlagMagic = 0xaa55;
constexpr uint16_t kMinVersion = 0x020c;    // 2.12: xloadflags, the 64-bit entry point.
constexpr uint16_t kRsdpVersion = 0x020e;   // 2.14: acpi_rsdp_addr.
constexpr uint8_t kLoaderUndefined = 0xff;  // type_of_loader for loaders without an ID.
constexpr uint64_t kEntry64Offset = 0x200;  // 64-bit entry: load address + 0x200.
constexpr size_t kElfCmdlineMax = 2047;     // COMMAND_LINE_SIZE - 1 on x86.
constexpr size_t kMaxE820 = 128;            // E820_MAX_ENTRIES_ZEROPAGE.
constexpr uint64_t kPage = 4096;

absl::Status Invalid(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("kernel image: ", what));
}

// What to write where; computed completely before anything is written.
struct Plan {
  KernelFormat format;
  std::vector<Chunk> chunks;
  GuestAddress entry;
  GuestAddress kernel_start;
  uint64_t kernel_end;
  boot_params params = {};
  size_t cmdline_max;
  uint64_t initrd_addr_max = 0xffffffff;
  uint16_t version = 0;
  std::optional<uint64_t> pvh_entry;
};

constexpr uint32_t kXenElfNotePhys32Entry = 18;

// The PVH entry in an ELF's notes: a note named "Xen" of type 18 whose descriptor's low 32 bits
// are the entry's physical address (the kernel writes a quad on x86-64). Notes are 4-byte aligned
// whatever the segment's alignment.
std::optional<uint64_t> FindPvhEntry(absl::Span<const uint8_t> notes) {
  auto align4 = [](uint64_t n) { return (n + 3) & ~uint64_t{3}; };
  uint64_t at = 0;
  while (notes.size() - at >= 12) {
    const uint64_t namesz = Field<uint32_t>(notes, at), descsz = Field<uint32_t>(notes, at + 4);
    const uint32_t type = Field<uint32_t>(notes, at + 8);
    const uint64_t name = at + 12, desc = name + align4(namesz);
    if (desc > notes.size() || align4(descsz) > notes.size() - desc) return std::nullopt;
    if (type == kXenElfNotePhys32Entry && namesz == 4 &&
        std::memcmp(notes.data() + name, "Xen", 4) == 0 && descsz >= 4) {
      return Field<uint32_t>(notes, desc);
    }
    at = desc + align4(descsz);
  }
  return std::nullopt;
}

absl::StatusOr<Plan> PlanBzImage(absl::Span<const uint8_t> data) {
  Plan plan{.format = KernelFormat::kBzImage};
  // Detection already checked that the magic at 0x202 is present.
  const size_t header_end = kHeaderMagic + data[kJump + 1];
  if (header_end > data.size()) {
    return Invalid(absl::StrCat("truncated: setup header ends at ", Hex(header_end),
                                " but the file is ", data.size(), " bytes"));
  }
  if (header_end < kCmdlineSize + 4) {
    return Invalid(absl::StrCat("setup header ends at ", Hex(header_end),
                                ", too short for boot protocol 2.12"));
  }
  if (Field<uint16_t>(data, kBootFlag) != kBootFlagMagic) {
    return Invalid("boot_flag is not 0xaa55: not a bzImage");
  }
  plan.version = Field<uint16_t>(data, kVersion);
  if (plan.version < kMinVersion) {
    return Invalid(absl::StrCat("boot protocol ", plan.version >> 8, ".", plan.version & 0xff,
                                " is older than 2.12, which the 64-bit entry needs"));
  }
  if ((Field<uint16_t>(data, kXLoadFlags) & XLF_KERNEL_64) == 0) {
    return Invalid("xloadflags lacks XLF_KERNEL_64: the kernel has no 64-bit entry point");
  }
  if ((data[kLoadFlags] & LOADED_HIGH) == 0) {
    return Invalid("loadflags lacks LOADED_HIGH: a zImage, not a bzImage");
  }
  const uint64_t setup_sects = data[kSetupSects] == 0 ? 4 : data[kSetupSects];
  const uint64_t setup_size = (setup_sects + 1) * 512;
  const uint64_t kernel_size = uint64_t{Field<uint32_t>(data, kSysSize)} * 16;
  if (kernel_size == 0 || setup_size + kernel_size > data.size()) {
    return Invalid(absl::StrCat("truncated: the setup header promises ", setup_size,
                                " setup bytes and a ", kernel_size,
                                "-byte kernel, but the file is ", data.size(), " bytes"));
  }
  const uint64_t init_size = std::max<uint64_t>(Field<uint32_t>(data, kInitSize), kernel_size);
  plan.kernel_start = kBzImageLoadAddress;
  plan.kernel_end = kBzImageLoadAddress.raw() + init_size;
  plan.entry = GuestAddress(kBzImageLoadAddress.raw() + kEntry64Offset);
  plan.chunks.push_back({kBzImageLoadAddress, data.subspan(setup_size, kernel_size)});
  plan.cmdline_max = Field<uint32_t>(data, kCmdlineSize);
  plan.initrd_addr_max = Field<uint32_t>(data, kInitrdAddrMax);
  // The zero page starts as a copy of the file's setup header.
  const size_t header_len = std::min(header_end - kSetupSects, sizeof(setup_header));
  std::memcpy(&plan.params.hdr, data.data() + kSetupSects, header_len);
  plan.params.hdr.code32_start = static_cast<uint32_t>(kBzImageLoadAddress.raw());
  return plan;
}

absl::StatusOr<Plan> PlanElf(absl::Span<const uint8_t> data) {
  Plan plan{.format = KernelFormat::kElf, .cmdline_max = kElfCmdlineMax};
  if (data.size() < sizeof(Elf64_Ehdr)) return Invalid("truncated ELF header");
  const auto eh = Field<Elf64_Ehdr>(data, 0);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
      eh.e_machine != EM_X86_64) {
    return Invalid("ELF file is not a little-endian x86-64 ELF64 image");
  }
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0) {
    return Invalid(absl::StrCat("ELF program headers: ", eh.e_phnum, " entries of ", eh.e_phentsize,
                                " bytes"));
  }
  const uint64_t ph_bytes = uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
  if (eh.e_phoff > data.size() || ph_bytes > data.size() - eh.e_phoff) {
    return Invalid("truncated: ELF program headers lie outside the file");
  }
  uint64_t lowest = ~uint64_t{0}, highest = 0;
  bool entry_loaded = false;
  for (uint16_t i = 0; i < eh.e_phnum; ++i) {
    const auto ph = Field<Elf64_Phdr>(data, eh.e_phoff + i * sizeof(Elf64_Phdr));
    if (ph.p_type == PT_NOTE && ph.p_offset <= data.size() &&
        ph.p_filesz <= data.size() - ph.p_offset) {
      if (std::optional<uint64_t> e = FindPvhEntry(data.subspan(ph.p_offset, ph.p_filesz))) {
        plan.pvh_entry = e;
      }
    }
    if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
    if (ph.p_offset > data.size() || ph.p_filesz > data.size() - ph.p_offset) {
      return Invalid(absl::StrCat("truncated: ELF segment ", i, " lies outside the file"));
    }
    if (ph.p_filesz > ph.p_memsz || !RangeLast(ph.p_paddr, ph.p_memsz)) {
      return Invalid(absl::StrCat("ELF segment ", i, " has a bad size or address"));
    }
    plan.chunks.push_back({GuestAddress(ph.p_paddr), data.subspan(ph.p_offset, ph.p_filesz),
                           ph.p_memsz - ph.p_filesz});
    lowest = std::min(lowest, ph.p_paddr);
    highest = std::max(highest, ph.p_paddr + ph.p_memsz);
    entry_loaded |= eh.e_entry >= ph.p_paddr && eh.e_entry - ph.p_paddr < ph.p_memsz;
  }
  if (plan.chunks.empty()) return Invalid("ELF file has no loadable segment");
  if (!entry_loaded) {
    return Invalid(
        absl::StrCat("ELF entry point ", Hex(eh.e_entry), " is not in a loaded segment"));
  }
  if (plan.pvh_entry && (*plan.pvh_entry < lowest || *plan.pvh_entry >= highest)) {
    return Invalid(absl::StrCat("PVH entry ", Hex(*plan.pvh_entry), " lies outside the kernel [",
                                Hex(lowest), ", ", Hex(highest), ")"));
  }
  plan.kernel_start = GuestAddress(lowest);
  plan.kernel_end = highest;
  plan.entry = GuestAddress(eh.e_entry);
  // An ELF kernel has no setup header: fill in what the kernel reads from one.
  plan.params.hdr.boot_flag = kBootFlagMagic;
  plan.params.hdr.header = kHdrS;
  plan.params.hdr.kernel_alignment = 0x1000000;
  plan.version = kRsdpVersion;
  return plan;
}

absl::StatusOr<GuestAddress> PlaceInitrd(const GuestMemory& memory, const Plan& plan,
                                         uint64_t size) {
  // As high as possible below initrd_addr_max, page-aligned, above the kernel.
  for (auto it = memory.regions().rbegin(); it != memory.regions().rend(); ++it) {
    const GuestRegion& r = **it;
    const uint64_t top = std::min(r.last().raw(), plan.initrd_addr_max);
    if (top < r.start().raw() || size > top + 1) continue;
    const uint64_t start = (top + 1 - size) & ~(kPage - 1);
    if (start >= r.start().raw() && start >= plan.kernel_end) return GuestAddress(start);
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "initrd of ", size, " bytes does not fit in guest RAM above the kernel (ends at ",
      Hex(plan.kernel_end), ") and below initrd_addr_max ", Hex(plan.initrd_addr_max)));
}

}  // namespace

absl::StatusOr<LinuxBootInfo> LoadLinux(const GuestMemory& memory, const LinuxBootConfig& config) {
  const absl::Span<const uint8_t> data = config.kernel;
  absl::StatusOr<Plan> planned;
  if (data.size() >= 4 && std::memcmp(data.data(), ELFMAG, SELFMAG) == 0) {
    planned = PlanElf(data);
    if (planned.ok() && !config.setup_header_from.empty()) {
      // Decompressed from a bzImage: the zero page as that bzImage's would be.
      const absl::Span<const uint8_t> bz = config.setup_header_from;
      if (bz.size() < kHeaderMagic + 4 || Field<uint32_t>(bz, kHeaderMagic) != kHdrS) {
        return Invalid("the setup header's source is not a bzImage");
      }
      ASSIGN_OR_RETURN(Plan header, PlanBzImage(bz));
      planned->params = header.params;
      planned->params.hdr.code32_start = 0;
      planned->cmdline_max = header.cmdline_max;
      planned->initrd_addr_max = header.initrd_addr_max;
      planned->version = header.version;
    }
  } else if (data.size() >= kHeaderMagic + 4 && Field<uint32_t>(data, kHeaderMagic) == kHdrS) {
    planned = PlanBzImage(data);
  } else {
    return Invalid(absl::StrCat("neither a bzImage (no \"HdrS\" at 0x202) nor an ELF file (",
                                data.size(), " bytes)"));
  }
  RETURN_IF_ERROR(planned.status());
  Plan& plan = *planned;

  // Validate everything before writing anything.
  if (config.cmdline.size() > plan.cmdline_max) {
    return absl::InvalidArgumentError(absl::StrCat("kernel command line is ", config.cmdline.size(),
                                                   " bytes; this kernel accepts at most ",
                                                   plan.cmdline_max));
  }
  if (config.cmdline.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("kernel command line contains a NUL byte");
  }
  if (config.e820.size() > kMaxE820) {
    return absl::InvalidArgumentError(
        absl::StrCat("e820 map has ", config.e820.size(), " entries; the zero page holds 128"));
  }
  for (const E820Entry& e : config.e820) {
    if (!RangeLast(e.address, e.size)) {
      return absl::InvalidArgumentError(
          absl::StrCat("e820 entry at ", Hex(e.address), " has a zero size or wraps past 2^64"));
    }
  }
  RETURN_IF_ERROR(
      RequireRam(memory, plan.kernel_start, plan.kernel_end - plan.kernel_start.raw(), "kernel"));
  RETURN_IF_ERROR(RequireRam(memory, config.boot_params_address, sizeof(boot_params), "zero page"));
  RETURN_IF_ERROR(
      RequireRam(memory, config.cmdline_address, config.cmdline.size() + 1, "command line"));
  std::optional<GuestAddress> initrd;
  if (config.initrd.size() > 0xffffffffu) {
    return absl::InvalidArgumentError("initrd is larger than the 4 GiB ramdisk_size can describe");
  }
  if (!config.initrd.empty()) {
    ASSIGN_OR_RETURN(initrd, PlaceInitrd(memory, plan, config.initrd.size()));
  }

  // Write.
  RETURN_IF_ERROR(WriteChunks(memory, plan.chunks));
  if (initrd) RETURN_IF_ERROR(memory.Write(*initrd, config.initrd));
  std::vector<uint8_t> cmdline(config.cmdline.begin(), config.cmdline.end());
  cmdline.push_back(0);
  RETURN_IF_ERROR(memory.Write(config.cmdline_address, cmdline));

  boot_params& bp = plan.params;
  bp.hdr.type_of_loader = kLoaderUndefined;
  bp.hdr.cmd_line_ptr = static_cast<uint32_t>(config.cmdline_address.raw());
  bp.hdr.cmdline_size = static_cast<uint32_t>(plan.cmdline_max);
  if (initrd) {
    bp.hdr.ramdisk_image = static_cast<uint32_t>(initrd->raw());
    bp.hdr.ramdisk_size = static_cast<uint32_t>(config.initrd.size());
  }
  if (config.rsdp && plan.version >= kRsdpVersion) bp.acpi_rsdp_addr = config.rsdp->raw();
  bp.e820_entries = static_cast<uint8_t>(config.e820.size());
  for (size_t i = 0; i < config.e820.size(); ++i) {
    bp.e820_table[i].addr = config.e820[i].address;
    bp.e820_table[i].size = config.e820[i].size;
    bp.e820_table[i].type = static_cast<uint32_t>(config.e820[i].type);
  }
  RETURN_IF_ERROR(memory.WriteObj(config.boot_params_address, bp));
  return LinuxBootInfo{
      .format = plan.format,
      .entry = plan.entry,
      .boot_params = config.boot_params_address,
      .kernel_start = plan.kernel_start,
      .kernel_end = plan.kernel_end,
      .initrd = initrd,
      .pvh_entry = plan.pvh_entry ? std::optional(GuestAddress(*plan.pvh_entry)) : std::nullopt};
}

}  // namespace vmmkit::loader
