// File: loader/pvh.h
// -----------------------------------------------------------------------------
// WritePvhStartInfo writes what a kernel entered through its PVH entry (the Xen/x86 PVH boot
// protocol, which Linux implements with CONFIG_PVH and Cloud Hypervisor and Firecracker use) finds
// at EBX: the hvm_start_info structure (version 1), the module list (the initrd as module 0, as
// Linux expects) and the memory map. The kernel, its command line and its initrd are loaded by
// LoadLinux (its ELF path reports the PVH entry); the caller then enters the kernel in 32-bit
// protected mode without paging (kvm::EnterProtectedMode) with EBX = `start_info`.
//
//   RETURN_IF_ERROR(WritePvhStartInfo(memory, {.cmdline = kCmdline, .initrd = ..., .e820 = ...}));
//
// Linux reads the map before it has more than its first GiB mapped, and copies at most 128
// entries: everything must lie below 1 GiB and the map hold 1 to 127 entries (INVALID_ARGUMENT
// otherwise; RESOURCE_EXHAUSTED if the structures are not RAM).

#ifndef VMMKIT_LOADER_PVH_H_
#define VMMKIT_LOADER_PVH_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "loader/linux_loader.h"
#include "memory/guest_memory.h"

namespace vmmkit::loader {

inline constexpr uint32_t kPvhStartInfoMagic = 0x336ec578;

struct PvhConfig {
  // The start info (56 bytes), then the module list at +0x40 and the memory map at +0x80: one page.
  GuestAddress start_info = GuestAddress(0x6000);
  std::optional<GuestAddress> cmdline;  // A NUL-terminated string already in guest RAM.
  std::optional<GuestAddress> initrd;
  uint64_t initrd_size = 0;
  std::optional<GuestAddress> rsdp;
  std::vector<E820Entry> e820;
};

absl::Status WritePvhStartInfo(const GuestMemory& memory, const PvhConfig& config);

}  // namespace vmmkit::loader

#endif  // VMMKIT_LOADER_PVH_H_
