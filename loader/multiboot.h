// File: loader/multiboot.h
// -----------------------------------------------------------------------------
// LoadMultiboot puts a Multiboot (version 1) kernel into guest memory the way GRUB and QEMU do:
// an ELF32 (i386) image by its program headers' physical addresses, or any image by the header's
// address fields (flags bit 16, the "a.out kludge"); its command line; at most one module (vmm's
// --initrd), page-aligned after the kernel; and the Multiboot information structure: memory
// bounds, the memory map (from the e820 map), the module list and the boot loader's name. The
// caller enters the kernel in 32-bit protected mode without paging (kvm::EnterProtectedMode) at
// `entry`, with EAX = kMultibootBootMagic and EBX = `info`.
//
//   if (loader::IsMultiboot(kernel)) {
//     ASSIGN_OR_RETURN(MultibootBootInfo mb, LoadMultiboot(memory, {.kernel = kernel, ...}));
//   }
//
// Images are untrusted input: every field is checked before anything is written (INVALID_ARGUMENT
// naming the field; RESOURCE_EXHAUSTED when the kernel or module does not fit in RAM below
// 4 GiB). As in GRUB and QEMU, a request for a video mode (flags bit 2) is answered with no video
// information; other required flag bits (0-15) vmm does not know are refused, as the
// specification asks. The kernel must load at or above 1 MiB (below is vmm's: boot information,
// firmware tables, the reset stub).

#ifndef VMMKIT_LOADER_MULTIBOOT_H_
#define VMMKIT_LOADER_MULTIBOOT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "loader/linux_loader.h"
#include "memory/guest_memory.h"

namespace vmmkit::loader {

inline constexpr uint32_t kMultibootHeaderMagic = 0x1badb002;
inline constexpr uint32_t kMultibootBootMagic = 0x2badb002;  // EAX at entry.

// Multiboot information flags vmm sets.
inline constexpr uint32_t kMbiMemory = 1u << 0, kMbiCmdline = 1u << 2, kMbiModules = 1u << 3,
                          kMbiMemoryMap = 1u << 6, kMbiLoaderName = 1u << 9;

struct MultibootConfig {
  absl::Span<const uint8_t> kernel;
  // As the kernel sees it: GRUB and QEMU put the kernel's path first (argv[0] to some kernels).
  std::string cmdline;
  std::optional<absl::Span<const uint8_t>> module;  // Module 0, with `module_string`.
  std::string module_string;
  std::vector<E820Entry> e820;  // At most 128 entries.
  // The information structure, the module list and the memory map: one page.
  GuestAddress info_address = GuestAddress(0x7000);
  // The command line, the module's string and the loader's name, in at most `strings_max` bytes.
  GuestAddress strings_address = GuestAddress(0x20000);
  uint64_t strings_max = 0x10000;
};

struct MultibootBootInfo {
  GuestAddress entry;
  GuestAddress info;  // EBX.
  GuestAddress kernel_start;
  uint64_t kernel_end;  // Exclusive, .bss included.
  std::optional<GuestAddress> module;
};

// Whether `kernel` carries a Multiboot header (the magic with a valid checksum, 4-byte aligned
// in its first 8 KiB) and is not a 64-bit ELF (which vmm boots as a Linux vmlinux).
bool IsMultiboot(absl::Span<const uint8_t> kernel);

absl::StatusOr<MultibootBootInfo> LoadMultiboot(const GuestMemory& memory,
                                                const MultibootConfig& config);

}  // namespace vmmkit::loader

#endif  // VMMKIT_LOADER_MULTIBOOT_H_
