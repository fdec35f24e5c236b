#include "loader/pvh.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "loader/image.h"

namespace vmmkit::loader {
namespace {

// xen/include/public/arch-x86/hvm/start_info.h, version 1.
struct HvmStartInfo {
  uint32_t magic, version, flags, nr_modules;
  uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
  uint32_t memmap_entries, reserved;
};
static_assert(sizeof(HvmStartInfo) == 56);

struct HvmModlistEntry {
  uint64_t paddr, size, cmdline_paddr, reserved;
};
static_assert(sizeof(HvmModlistEntry) == 32);

struct HvmMemmapEntry {
  uint64_t addr, size;
  uint32_t type, reserved;
};
static_assert(sizeof(HvmMemmapEntry) == 24);

constexpr uint64_t kModlistOffset = 0x40, kMemmapOffset = 0x80, kPage = 0x1000;
constexpr size_t kMaxEntries = 127;  // Linux copies them into a 128-entry table, then adds one.
constexpr uint64_t kLinuxEarlyMap = uint64_t{1} << 30;

}  // namespace

absl::Status WritePvhStartInfo(const GuestMemory& memory, const PvhConfig& config) {
  if (config.e820.empty() || config.e820.size() > kMaxEntries) {
    return absl::InvalidArgumentError(absl::StrCat("PVH memory map: ", config.e820.size(),
                                                   " entries; Linux needs 1 to ", kMaxEntries));
  }
  const uint64_t base = config.start_info.raw();
  if (base % 8 != 0 || base + kPage > kLinuxEarlyMap) {
    return absl::InvalidArgumentError(
        absl::StrCat("PVH start info at ", Hex(base), ": must be 8-byte aligned, below 1 GiB"));
  }
  for (std::optional<GuestAddress> a : {config.cmdline, config.initrd}) {
    if (a && a->raw() >= (uint64_t{1} << 32)) {
      return absl::InvalidArgumentError(
          absl::StrCat("PVH: ", a->ToString(), " lies above 4 GiB, beyond Linux's 32-bit fields"));
    }
  }
  RETURN_IF_ERROR(RequireRam(memory, config.start_info, kPage, "PVH start info"));
  HvmStartInfo info{.magic = kPvhStartInfoMagic, .version = 1};
  if (config.initrd) {
    info.nr_modules = 1;
    info.modlist_paddr = base + kModlistOffset;
    RETURN_IF_ERROR(memory.WriteObj(
        GuestAddress(info.modlist_paddr),
        HvmModlistEntry{.paddr = config.initrd->raw(), .size = config.initrd_size}));
  }
  if (config.cmdline) info.cmdline_paddr = config.cmdline->raw();
  if (config.rsdp) info.rsdp_paddr = config.rsdp->raw();
  info.memmap_paddr = base + kMemmapOffset;
  info.memmap_entries = static_cast<uint32_t>(config.e820.size());
  for (size_t i = 0; i < config.e820.size(); ++i) {
    const E820Entry& e = config.e820[i];
    RETURN_IF_ERROR(memory.WriteObj(
        GuestAddress(info.memmap_paddr + i * sizeof(HvmMemmapEntry)),
        HvmMemmapEntry{.addr = e.address, .size = e.size, .type = static_cast<uint32_t>(e.type)}));
  }
  return memory.WriteObj(config.start_info, info);
}

}  // namespace vmmkit::loader
