#include "kvm/cpuid.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace vmmkit::kvm {
namespace {

bool Matches(const kvm_cpuid_entry2& e, uint32_t function, uint32_t index) {
  if (e.function != function) return false;
  return (e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) == 0 || e.index == index;
}

// Number of bits needed to hold IDs 0..count-1.
uint32_t IdBits(uint32_t count) {
  uint32_t bits = 0;
  while ((1u << bits) < count) ++bits;
  return bits;
}

constexpr uint32_t kLeafHypervisorSignature = 0x40000000;
constexpr uint32_t kLeafKvmFeatures = 0x40000001;
// CPUID.1:ECX bit 31: "running under a hypervisor".
constexpr uint32_t kHypervisorBit = 1u << 31;
// CPUID.1:ECX bit 24: the local APIC's TSC-deadline timer mode.
constexpr uint32_t kTscDeadlineBit = 1u << 24;
// CPUID.1:EDX bit 28: HTT, "EBX[23:16] is valid".
constexpr uint32_t kHttBit = 1u << 28;

// One level of the extended topology leaves (0xB, 0x1F).
void SetTopologyLevel(kvm_cpuid_entry2& e, uint32_t vcpu_id, uint32_t vcpu_count) {
  const uint32_t subleaf = e.index;
  e.edx = vcpu_id;  // x2APIC ID, the same in every subleaf.
  switch (subleaf) {
    case 0:  // SMT level: one thread per core.
      e.eax = 0;
      e.ebx = 1;
      e.ecx = (1u << 8) | subleaf;
      break;
    case 1:  // Core level: all vCPUs are cores of one package.
      e.eax = IdBits(vcpu_count);
      e.ebx = vcpu_count;
      e.ecx = (2u << 8) | subleaf;
      break;
    default:  // Invalid level: terminates the enumeration.
      e.eax = 0;
      e.ebx = 0;
      e.ecx = subleaf;
      break;
  }
}

}  // namespace

const kvm_cpuid_entry2* Cpuid::Find(uint32_t function, uint32_t index) const {
  for (const auto& e : entries_) {
    if (Matches(e, function, index)) return &e;
  }
  return nullptr;
}

kvm_cpuid_entry2* Cpuid::Find(uint32_t function, uint32_t index) {
  return const_cast<kvm_cpuid_entry2*>(std::as_const(*this).Find(function, index));
}

void Cpuid::Set(const kvm_cpuid_entry2& entry) {
  if (kvm_cpuid_entry2* e = Find(entry.function, entry.index)) {
    *e = entry;
  } else {
    entries_.push_back(entry);
  }
}

absl::StatusOr<Cpuid> BuildGuestCpuid(const Cpuid& supported, uint32_t vcpu_id, uint32_t vcpu_count,
                                      const GuestCpuidOptions& options) {
  if (vcpu_count == 0 || vcpu_count > 255 || vcpu_id >= vcpu_count) {
    return absl::InvalidArgumentError(
        absl::StrCat("guest CPUID for vCPU ", vcpu_id, " of ", vcpu_count,
                     ": need 1..255 vCPUs and an id below the count"));
  }
  Cpuid cpuid = supported;
  for (kvm_cpuid_entry2& e : cpuid.mutable_entries()) {
    switch (e.function) {
      case 0x1:
        // EBX[31:24] initial APIC ID, EBX[23:16] logical processors per package.
        e.ebx = (e.ebx & 0xffffu) | (vcpu_id << 24) | (vcpu_count << 16);
        e.ecx |= kHypervisorBit;
        if (options.tsc_deadline_timer) e.ecx |= kTscDeadlineBit;
        if (vcpu_count > 1) {
          e.edx |= kHttBit;
        } else {
          e.edx &= ~kHttBit;
        }
        break;
      case 0x4:
        // Deterministic cache parameters: EAX[31:26] = cores per package - 1; one thread per cache.
        if ((e.eax & 0x1f) != 0) e.eax = (e.eax & 0x3ffu) | ((vcpu_count - 1) << 26);
        break;
      case 0xb:
      case 0x1f:
        SetTopologyLevel(e, vcpu_id, vcpu_count);
        break;
      case 0x80000008:
        // AMD: ECX[7:0] = cores - 1, ECX[15:12] = APIC ID bits.
        e.ecx = (e.ecx & ~0xf0ffu) | (IdBits(vcpu_count) << 12) | (vcpu_count - 1);
        break;
      default:
        break;
    }
  }
  // KVM's signature leaf: Linux looks for "KVMKVMKVM\0\0\0" to enable its paravirtual features.
  kvm_cpuid_entry2 sig{};
  sig.function = kLeafHypervisorSignature;
  sig.eax = kLeafKvmFeatures;
  std::memcpy(&sig.ebx, "KVMK", 4);
  std::memcpy(&sig.ecx, "VMKV", 4);
  std::memcpy(&sig.edx, "M\0\0\0", 4);
  cpuid.Set(sig);
  return cpuid;
}

}  // namespace vmmkit::kvm
