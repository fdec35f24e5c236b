// File: kvm/long_mode.h
// -----------------------------------------------------------------------------
// Puts a vCPU directly into 64-bit long mode, the state the Linux 64-bit boot protocol and small
// test guests expect: a flat GDT (code selector 0x8, data 0x10), identity-mapped page tables with
// 2 MiB pages, and CR0/CR4/EFER set through KVM_SET_SREGS. No real-mode trampoline is needed.
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

}  // namespace vmmkit::kvm

#endif  // VMMKIT_KVM_LONG_MODE_H_
