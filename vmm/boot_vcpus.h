// File: vmm/boot_vcpus.h
// -----------------------------------------------------------------------------
// CreateBootVcpus creates a VM's vCPUs in the state a kernel's entry expects from its boot
// loader: CPUID with the SMP topology and KVM's leaves (kvm/cpuid.h), the MSRs a firmware would
// have initialized, the LAPIC's LINT0/LINT1 wired as a PC's (ExtINT, NMI), the FPU at its reset
// state, and the bootstrap processor at the entry of its boot protocol: a Linux kernel's 64-bit
// entry (long mode, the zero page in RSI), a Multiboot kernel's (32-bit protected mode without
// paging, EAX the Multiboot magic, EBX the information structure) or a kernel's PVH entry (the
// same mode, EBX the hvm_start_info; TR a busy 32-bit TSS, as the PVH specification asks). The
// application processors
// wait for INIT/SIPI in the in-kernel LAPIC.
//
//   ASSIGN_OR_RETURN(std::vector<std::unique_ptr<kvm::Vcpu>> vcpus,
//                    CreateBootVcpus(machine, /*count=*/2, {.entry = info.entry,
//                                                           .boot_info = info.boot_params}));

#ifndef VMMKIT_VMM_BOOT_VCPUS_H_
#define VMMKIT_VMM_BOOT_VCPUS_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "kvm/vcpu.h"
#include "memory/address.h"
#include "vmm/machine.h"

namespace vmmkit::vmm {

struct BootEntry {
  enum class Protocol { kLinux64, kMultiboot, kPvh };
  Protocol protocol = Protocol::kLinux64;
  GuestAddress entry;
  // Linux: the zero page (RSI). Multiboot: the information (EBX). PVH: the start info (EBX).
  GuestAddress boot_info;
};

// The BSP's page tables and GDT go where layout.h puts them (kPageTables, kGdt).
absl::StatusOr<std::vector<std::unique_ptr<kvm::Vcpu>>> CreateBootVcpus(Machine& machine,
                                                                        uint32_t count,
                                                                        const BootEntry& boot);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_BOOT_VCPUS_H_
