// File: kvm/testing/tiny_guest.h
// -----------------------------------------------------------------------------
// Testonly: a VM with one vCPU and a little RAM that runs a few bytes of machine code, in real
// mode or in 64-bit long mode entered directly through KVM_SET_SREGS. Enough to exercise every
// exit type against the real /dev/kvm without a guest kernel.
//
// Guest-physical layout (long mode): GDT 0x500, code 0x1000, stack top 0x8000, PML4 0x9000,
// PDPT 0xa000, PD 0xb000 (identity-maps the first 1 GiB with 2 MiB pages), RAM [0, ram_size).
// Addresses in [ram_size, 1 GiB) are mapped by the page tables but have no memory slot: guest
// accesses there are MMIO exits.
//
//   ASSIGN_OR_RETURN(TinyGuest g, MakeTinyGuest(kvm, CpuMode::kLong, {0xf4}));  // hlt
//   ASSIGN_OR_RETURN(VcpuExit e, g.vcpu->Run());  // exit::Hlt

#ifndef VMMKIT_KVM_TESTING_TINY_GUEST_H_
#define VMMKIT_KVM_TESTING_TINY_GUEST_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kvm/kvm.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "memory/guest_memory.h"

namespace vmmkit::kvm::testing {

enum class CpuMode { kReal, kLong };

inline constexpr uint64_t kCodeAddress = 0x1000;
inline constexpr uint64_t kMmioAddress = 0x20000000;  // Page-table mapped, no slot.

struct TinyGuestOptions {
  uint64_t ram_size = 2 << 20;
  MemorySlotFlags slot_flags = {};
  bool irqchip = false;           // KVM_CREATE_IRQCHIP before the vCPU exists.
  bool split_irqchip = false;     // Instead: KVM_CAP_SPLIT_IRQCHIP with 24 IOAPIC pins.
  bool manual_dirty_log = false;  // KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 before the slot exists.
};

struct TinyGuest {
  std::unique_ptr<Vm> vm;
  GuestMemory memory;
  uint32_t slot = 0;
  std::unique_ptr<Vcpu> vcpu;
};

absl::StatusOr<TinyGuest> MakeTinyGuest(const Kvm& kvm, CpuMode mode,
                                        absl::Span<const uint8_t> code,
                                        const TinyGuestOptions& options = {});

// Software-enables the vCPU's local APIC (SVR bit 8), without which fixed interrupts are dropped:
// for tests that deliver interrupts (irqfds, MSI routes) and look for them in the IRR.
absl::Status EnableLapic(Vcpu& vcpu);
// Whether `vector` is pending in the vCPU's local APIC (its IRR).
absl::StatusOr<bool> LapicPending(Vcpu& vcpu, uint8_t vector);

// The skip reason for tests that need /dev/kvm, or empty when it is usable.
std::string KvmUnavailableReason();

}  // namespace vmmkit::kvm::testing

#endif  // VMMKIT_KVM_TESTING_TINY_GUEST_H_
