#include "vmm/boot_vcpus.h"

#include <algorithm>
#include <cstring>

#include "base/status_macros.h"
#include "kvm/cpuid.h"
#include "kvm/long_mode.h"
#include "loader/multiboot.h"
#include "vmm/layout.h"

namespace vmmkit::vmm {
namespace {

// MSRs Linux expects a firmware to have initialized; values as after a reset, plus write-back
// caching by default (MTRRdefType), without which every access would be uncached.
struct BootMsr {
  uint32_t index;
  uint64_t value;
};
constexpr BootMsr kBootMsrs[] = {
    {0x174, 0},              // IA32_SYSENTER_CS
    {0x175, 0},              // IA32_SYSENTER_ESP
    {0x176, 0},              // IA32_SYSENTER_EIP
    {0xc0000081, 0},         // STAR
    {0xc0000082, 0},         // LSTAR
    {0xc0000083, 0},         // CSTAR
    {0xc0000084, 0},         // SYSCALL_MASK
    {0xc0000102, 0},         // KERNEL_GS_BASE
    {0x10, 0},               // IA32_TSC
    {0x1a0, 1},              // IA32_MISC_ENABLE: fast strings
    {0x2ff, (1 << 11) | 6},  // MTRRdefType: MTRRs enabled, default type write-back
};

void SetLapicLvt(kvm_lapic_state& lapic, size_t reg, uint32_t value) {
  std::memcpy(&lapic.regs[reg], &value, sizeof(value));
}

}  // namespace

absl::StatusOr<std::vector<std::unique_ptr<kvm::Vcpu>>> CreateBootVcpus(Machine& machine,
                                                                        uint32_t count,
                                                                        const BootEntry& boot) {
  kvm::Kvm& kvm = machine.kvm();
  ASSIGN_OR_RETURN(kvm::Cpuid supported, kvm.GetSupportedCpuid());
  // The in-kernel LAPIC emulates the TSC-deadline timer where KVM says so.
  absl::StatusOr<int> tsc_deadline = kvm.CheckExtension(KVM_CAP_TSC_DEADLINE_TIMER);
  const kvm::GuestCpuidOptions cpuid_options{.tsc_deadline_timer =
                                                 tsc_deadline.ok() && *tsc_deadline > 0};
  ASSIGN_OR_RETURN(std::vector<uint32_t> saved_msrs, kvm.GetMsrIndexList());
  std::vector<kvm_msr_entry> msrs;
  for (const BootMsr& m : kBootMsrs) {
    // Only MSRs this KVM saves and restores; the rest are left at KVM's reset values.
    if (std::find(saved_msrs.begin(), saved_msrs.end(), m.index) != saved_msrs.end()) {
      msrs.push_back(kvm_msr_entry{.index = m.index, .reserved = 0, .data = m.value});
    }
  }
  std::vector<std::unique_ptr<kvm::Vcpu>> vcpus;
  for (uint32_t id = 0; id < count; ++id) {
    ASSIGN_OR_RETURN(std::unique_ptr<kvm::Vcpu> vcpu, machine.vm().CreateVcpu(id));
    ASSIGN_OR_RETURN(kvm::Cpuid cpuid, kvm::BuildGuestCpuid(supported, id, count, cpuid_options));
    RETURN_IF_ERROR(vcpu->SetCpuid2(cpuid));
    RETURN_IF_ERROR(vcpu->SetMsrs(msrs));
    ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu->GetLapic());
    SetLapicLvt(lapic, 0x350, 0x700);  // LVT LINT0: ExtINT, so the PIC reaches the CPU.
    SetLapicLvt(lapic, 0x360, 0x400);  // LVT LINT1: NMI.
    RETURN_IF_ERROR(vcpu->SetLapic(lapic));
    ASSIGN_OR_RETURN(kvm_fpu fpu, vcpu->GetFpu());
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    RETURN_IF_ERROR(vcpu->SetFpu(fpu));
    if (id == 0) {
      kvm_regs regs{};
      regs.rip = boot.entry.raw();
      regs.rflags = 0x2;  // IF clear.
      if (boot.protocol != BootEntry::Protocol::kLinux64) {
        RETURN_IF_ERROR(kvm::EnterProtectedMode(machine.memory(), *vcpu, kGdt));
        if (boot.protocol == BootEntry::Protocol::kMultiboot) {
          regs.rax = loader::kMultibootBootMagic;
        }
        regs.rbx = boot.boot_info.raw();
      } else {
        RETURN_IF_ERROR(
            kvm::EnterLongMode(machine.memory(), *vcpu,
                               {.gdt = kGdt, .page_tables = kPageTables, .identity_map_gib = 4}));
        regs.rsi = boot.boot_info.raw();
      }
      RETURN_IF_ERROR(vcpu->SetRegs(regs));
    }
    vcpus.push_back(std::move(vcpu));
  }
  return vcpus;
}

}  // namespace vmmkit::vmm
