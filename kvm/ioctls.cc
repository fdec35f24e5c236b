#include "kvm/ioctls.h"

#include <linux/kvm.h>

#include "kvm/internal/kvm_abi.h"

namespace vmmkit::kvm {

std::vector<uint32_t> VcpuIoctls() {
  return {
      KVM_RUN,
      KVM_GET_REGS,
      KVM_SET_REGS,
      KVM_GET_SREGS,
      KVM_SET_SREGS,
      KVM_GET_FPU,
      KVM_SET_FPU,
      internal::kGetMsrs,
      internal::kSetMsrs,
      KVM_GET_LAPIC,
      KVM_SET_LAPIC,
      internal::kGetXsave,
      internal::kSetXsave,
      KVM_GET_XCRS,
      KVM_SET_XCRS,
      KVM_GET_VCPU_EVENTS,
      KVM_SET_VCPU_EVENTS,
      KVM_GET_MP_STATE,
      KVM_SET_MP_STATE,
      internal::kGetCpuid2,
  };
}

std::vector<uint32_t> VmRuntimeIoctls() {
  return {
      KVM_CHECK_EXTENSION,
      KVM_SET_USER_MEMORY_REGION,
      KVM_IRQFD,
      KVM_IOEVENTFD,
      internal::kSetGsiRouting,
      KVM_IRQ_LINE,
      KVM_IRQ_LINE_STATUS,
      KVM_SIGNAL_MSI,
      KVM_GET_DIRTY_LOG,
      KVM_CLEAR_DIRTY_LOG,
      KVM_GET_IRQCHIP,
      KVM_SET_IRQCHIP,
  };
}

}  // namespace vmmkit::kvm
