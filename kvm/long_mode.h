// File: kvm/long_mode.h
// -----------------------------------------------------------------------------
// Puts a vCPU directly into the state a boot protocol hands a kernel, through KVM_SET_SREGS, with
// no real-mode trampoline: 64-bit long mode (the Linux 64-bit boot protocol, small test guests: a
// flat GDT with code selector 0x8 and data 0x10, identity-mapped page tables with 2 MiB pages) or
// 32-bit protected mode without paging (Multiboot: flat 4 GiB code and data segments, CR0.PE only).
//
//   RETURN_IF_ERROR(EnterLongMode(memory, *vcpu));          // defaults: GDT 0x500, PML4 0x9000
//   kvm_regs regs{.rip = entry, .rflags = 0x2};
//   RETURN_IF_ERROR(vcpu->SetRegs(regs));

#ifndef VMMKIT_KVM_LONG_MODE_H_
#define VMMKIT_KVM_LONG_MODE_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kvm/vcpu.h"
#include "memory/guest_memory.h"

namespace vmmkit::kvm {

struct LongModeLayout {
  GuestAddress gdt = GuestAddress(0x500);  // 3 descriptors: null, code, data.
  // PML4 here, the PDPT in the next page, then one page directory per identity-mapped GiB.
  GuestAddress page_tables = GuestAddress(0x9000);
  uint32_t identity_map_gib = 1;  // 1..4.
};

inline constexpr uint16_t kLongModeCodeSelector = 0x8;
inline constexpr uint16_t kLongModeDataSelector = 0x10;

// Writes the GDT and page tables into `memory` (which must hold them: OUT_OF_RANGE otherwise)
// and loads the matching segment and control registers into `vcpu`. General registers are left
// to the caller.
absl::Status EnterLongMode(const GuestMemory& memory, Vcpu& vcpu,
                           const LongModeLayout& layout = {});

// Writes a flat GDT (null, 32-bit code 0x8, data 0x10, a 32-bit TSS 0x18) at `gdt` and loads it,
// with CS a 32-bit execute/read segment and DS, ES, FS, GS, SS read/write data segments, all base
// 0 and limit 4 GiB, TR the busy TSS (base 0, limit 0x67: what PVH asks); CR0 = PE | ET (paging
// and caching-disable clear, as firmware leaves them), CR4 = 0, EFER = 0. General registers are
// left to the caller.
absl::Status EnterProtectedMode(const GuestMemory& memory, Vcpu& vcpu,
                                GuestAddress gdt = GuestAddress(0x500));

}  // namespace vmmkit::kvm

#endif  // VMMKIT_KVM_LONG_MODE_H_
