// File: loader/linux_loader.h
// -----------------------------------------------------------------------------
// Loads a Linux kernel into guest memory for the x86-64 64-bit boot protocol
// (Documentation/arch/x86/boot.rst): a bzImage, or an uncompressed ELF vmlinux. It writes the
// kernel, the initrd (as high as the kernel allows), the command line and the "zero page"
// (struct boot_params: setup header, e820 map, ACPI RSDP address) and returns where the vCPU
// must start: RIP = entry, RSI = boot_params, in 64-bit mode with the low memory identity-mapped
// (see kvm/long_mode.h).
//
// The kernel image and initrd come from files the user chose, so they are parsed as untrusted:
// every header field is checked against the real file size, and a malformed or truncated image
// is an INVALID_ARGUMENT that names the field, never a crash or an out-of-bounds access.
//
//   LinuxBootConfig config{.kernel = kernel_bytes, .initrd = initrd_bytes,
//                          .cmdline = "console=ttyS0", .e820 = layout.e820()};
//   ASSIGN_OR_RETURN(LinuxBootInfo boot, LoadLinux(memory, config));
//   regs.rip = boot.entry.raw();  regs.rsi = boot.boot_params.raw();

#ifndef VMMKIT_LOADER_LINUX_LOADER_H_
#define VMMKIT_LOADER_LINUX_LOADER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/address.h"
#include "memory/guest_memory.h"

namespace vmmkit::loader {

enum class E820Type : uint32_t { kRam = 1, kReserved = 2, kAcpi = 3 };

struct E820Entry {
  uint64_t address;
  uint64_t size;
  E820Type type;
};

enum class KernelFormat { kBzImage, kElf };

struct LinuxBootConfig {
  absl::Span<const uint8_t> kernel;  // bzImage or ELF vmlinux file contents.
  absl::Span<const uint8_t> initrd;  // Empty: no initrd.
  std::string cmdline;
  std::vector<E820Entry> e820;       // At most 128 entries (the zero page's table).
  std::optional<GuestAddress> rsdp;  // ACPI root pointer, passed in boot_params (protocol 2.14+).
  // Where the loader puts its own structures; both must be RAM below 1 MiB, clear of the tables
  // the caller writes (GDT, page tables, ACPI).
  GuestAddress boot_params_address = GuestAddress(0x7000);
  GuestAddress cmdline_address = GuestAddress(0x20000);
  // With an ELF `kernel` decompressed from a bzImage (loader/decompress.h): that bzImage, whose
  // setup header (checked as for booting it) seeds the zero page, as its decompressor would have.
  absl::Span<const uint8_t> setup_header_from;
};

struct LinuxBootInfo {
  KernelFormat format;
  GuestAddress entry;        // 64-bit entry point.
  GuestAddress boot_params;  // Goes in RSI.
  GuestAddress kernel_start;
  uint64_t kernel_end;  // Exclusive; includes the memory the kernel needs to decompress.
  std::optional<GuestAddress> initrd;
  // An ELF kernel's 32-bit PVH entry (its "Xen" note of type XEN_ELFNOTE_PHYS32_ENTRY), if any.
  std::optional<GuestAddress> pvh_entry;
};

// Where a bzImage's protected-mode kernel is loaded (the traditional 1 MiB).
inline constexpr GuestAddress kBzImageLoadAddress = GuestAddress(0x100000);

// Loads the kernel (detecting bzImage or ELF), the initrd and the command line, and writes the
// zero page. INVALID_ARGUMENT for a malformed image or command line, RESOURCE_EXHAUSTED when the
// kernel or initrd does not fit in guest RAM, OUT_OF_RANGE if a structure would leave RAM.
absl::StatusOr<LinuxBootInfo> LoadLinux(const GuestMemory& memory, const LinuxBootConfig& config);

}  // namespace vmmkit::loader

#endif  // VMMKIT_LOADER_LINUX_LOADER_H_
