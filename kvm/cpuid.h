// File: kvm/cpuid.h
// -----------------------------------------------------------------------------
// Cpuid holds a list of CPUID leaves in KVM's format (kvm_cpuid_entry2), as returned by
// KVM_GET_SUPPORTED_CPUID and consumed by KVM_SET_CPUID2. BuildGuestCpuid turns the host's
// supported list into what one vCPU of an SMP guest should see: its APIC ID and the topology in
// leaves 0x1, 0x4, 0xB, 0x1F and 0x80000008, the hypervisor bit, and the KVM signature leaves
// (Linux finds KVM's paravirtual features, like kvmclock, there).
//
//   ASSIGN_OR_RETURN(Cpuid supported, kvm.GetSupportedCpuid());
//   for (uint32_t id = 0; id < n; ++id) {
//     ASSIGN_OR_RETURN(Cpuid cpuid, BuildGuestCpuid(supported, id, n));
//     RETURN_IF_ERROR(vcpus[id]->SetCpuid2(cpuid));
//   }

#ifndef VMMKIT_KVM_CPUID_H_
#define VMMKIT_KVM_CPUID_H_

#include <linux/kvm.h>

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace vmmkit::kvm {

class Cpuid {
 public:
  Cpuid() = default;
  explicit Cpuid(std::vector<kvm_cpuid_entry2> entries) : entries_(std::move(entries)) {}

  const std::vector<kvm_cpuid_entry2>& entries() const { return entries_; }
  std::vector<kvm_cpuid_entry2>& mutable_entries() { return entries_; }

  // The entry for (function, index), or null. `index` only matters for leaves whose entries have
  // KVM_CPUID_FLAG_SIGNIFCANT_INDEX (e.g. 0x4, 0x7, 0xB, 0xD).
  const kvm_cpuid_entry2* Find(uint32_t function, uint32_t index = 0) const;
  kvm_cpuid_entry2* Find(uint32_t function, uint32_t index = 0);
  // Replaces the entry with the same (function, index), or appends it.
  void Set(const kvm_cpuid_entry2& entry);

 private:
  std::vector<kvm_cpuid_entry2> entries_;
};

struct GuestCpuidOptions {
  // Offer the local APIC's TSC-deadline timer mode (CPUID.1:ECX[24]), the timer Linux prefers.
  // KVM emulates it in its in-kernel LAPIC, but kernels before 6.13 report it only through
  // KVM_CAP_TSC_DEADLINE_TIMER, not in KVM_GET_SUPPORTED_CPUID: a VMM with an in-kernel irqchip
  // sets this from that capability.
  bool tsc_deadline_timer = false;
};

// The CPUID for vCPU `vcpu_id` (0-based; it is also the APIC ID) of a guest with `vcpu_count`
// single-threaded cores in one socket. INVALID_ARGUMENT if vcpu_count is 0 or above 255 (the
// xAPIC ID limit) or vcpu_id >= vcpu_count.
absl::StatusOr<Cpuid> BuildGuestCpuid(const Cpuid& supported, uint32_t vcpu_id, uint32_t vcpu_count,
                                      const GuestCpuidOptions& options = {});

}  // namespace vmmkit::kvm

#endif  // VMMKIT_KVM_CPUID_H_
