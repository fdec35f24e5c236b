#include "kvm/testing/tiny_guest.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "kvm/long_mode.h"

namespace vmmkit::kvm::testing {
namespace {

constexpr uint64_t kStackTop = 0x8000;

absl::Status SetupRealMode(Vcpu& vcpu) {
  ASSIGN_OR_RETURN(kvm_sregs sregs, vcpu.GetSregs());
  sregs.cs.base = 0;
  sregs.cs.selector = 0;
  return vcpu.SetSregs(sregs);
}

}  // namespace

absl::StatusOr<TinyGuest> MakeTinyGuest(const Kvm& kvm, CpuMode mode,
                                        absl::Span<const uint8_t> code,
                                        const TinyGuestOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<Vm> vm, kvm.CreateVm());
  if (options.manual_dirty_log) {
    const uint64_t args[] = {KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE};
    RETURN_IF_ERROR(vm->EnableCap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, args));
  }
  ASSIGN_OR_RETURN(GuestMemory memory,
                   GuestMemory::CreateRam({{GuestAddress(0), options.ram_size}}));
  ASSIGN_OR_RETURN(uint32_t slot, vm->AddMemoryRegion(memory.regions()[0], options.slot_flags));
  if (options.split_irqchip) {
    RETURN_IF_ERROR(vm->EnableSplitIrqchip(24));
  } else if (options.irqchip) {
    RETURN_IF_ERROR(vm->CreateIrqchip());
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Vcpu> vcpu, vm->CreateVcpu(0));
  RETURN_IF_ERROR(memory.Write(GuestAddress(kCodeAddress), code));
  if (mode == CpuMode::kLong) {
    RETURN_IF_ERROR(EnterLongMode(memory, *vcpu));
  } else {
    RETURN_IF_ERROR(SetupRealMode(*vcpu));
  }
  kvm_regs regs{};
  regs.rip = kCodeAddress;
  regs.rsp = kStackTop;
  regs.rflags = 0x2;  // Bit 1 is reserved and must be set.
  RETURN_IF_ERROR(vcpu->SetRegs(regs));
  return TinyGuest{std::move(vm), std::move(memory), slot, std::move(vcpu)};
}

absl::Status EnableLapic(Vcpu& vcpu) {
  ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu.GetLapic());
  uint32_t svr;
  std::memcpy(&svr, lapic.regs + 0xf0, 4);
  svr |= 0x100;
  std::memcpy(lapic.regs + 0xf0, &svr, 4);
  return vcpu.SetLapic(lapic);
}

absl::StatusOr<bool> LapicPending(Vcpu& vcpu, uint8_t vector) {
  ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu.GetLapic());
  uint32_t irr;
  std::memcpy(&irr, lapic.regs + 0x200 + (vector / 32) * 0x10, 4);
  return (irr & (1u << (vector % 32))) != 0;
}

std::string KvmUnavailableReason() {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) {
    return absl::StrCat("/dev/kvm is not usable here: ", std::strerror(errno));
  }
  return "";
}

}  // namespace vmmkit::kvm::testing
