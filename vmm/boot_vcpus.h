// File: vmm/boot_vcpus.h
// -----------------------------------------------------------------------------
// CreateBootVcpus creates a VM's vCPUs in the state a Linux kernel's 64-bit entry expects from
// its boot loader: CPUID with the SMP topology and KVM's leaves (kvm/cpuid.h), the MSRs a
// firmware would have initialized, the LAPIC's LINT0/LINT1 wired as a PC's (ExtINT, NMI), the
// FPU at its reset state, and the bootstrap processor in 64-bit mode at `entry` with the zero page
// in RSI. The application processors wait for INIT/SIPI in the in-kernel LAPIC.
//
//   ASSIGN_OR_RETURN(std::vector<std::unique_ptr<kvm::Vcpu>> vcpus,
//                    CreateBootVcpus(machine, /*count=*/2, info.entry, info.boot_params));

#ifndef VMMKIT_VMM_BOOT_VCPUS_H_
#define VMMKIT_VMM_BOOT_VCPUS_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kvm/vcpu.h"
#include "memory/address.h"
#include "vmm/machine.h"

namespace vmmkit::vmm {

// The BSP's page tables and GDT go where layout.h puts them (kPageTables, kGdt).
absl::StatusOr<std::vector<std::unique_ptr<kvm::Vcpu>>> CreateBootVcpus(Machine& machine,
                                                                        uint32_t count,
                                                                        GuestAddress entry,
                                                                        GuestAddress boot_params);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_BOOT_VCPUS_H_
