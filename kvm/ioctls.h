// File: kvm/ioctls.h
// -----------------------------------------------------------------------------
// The ioctl requests kvm/ issues, grouped by the fd and phase they belong to, in the numbers the
// kernel sees (some differ from <linux/kvm.h>'s C++ macro values: see internal/kvm_abi.h). For
// seccomp allow-lists: a VMM's threads that run or change a VM after it is built need only these.
//
//   policy.AllowIoctls(kvm::VcpuIoctls());

#ifndef VMMKIT_KVM_IOCTLS_H_
#define VMMKIT_KVM_IOCTLS_H_

#include <cstdint>
#include <vector>

namespace vmmkit::kvm {

// On a vCPU fd: KVM_RUN and reading or setting its state.
std::vector<uint32_t> VcpuIoctls();

// On a built VM's fd: memory slots, irqfds, ioeventfds, GSI routing, raising interrupts,
// dirty logs, KVM_CHECK_EXTENSION (also on /dev/kvm). Not VM or vCPU creation.
std::vector<uint32_t> VmRuntimeIoctls();

}  // namespace vmmkit::kvm

#endif  // VMMKIT_KVM_IOCTLS_H_
