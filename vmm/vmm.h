// File: vmm/vmm.h
// -----------------------------------------------------------------------------
// Vmm assembles one x86-64 Linux VM from vmmkit's libraries and runs it:
//   memory/  guest RAM (memfd), an AddressSpace whose RAM follows into KVM through
//   kvm/     KvmMemorySlots; the in-kernel PIC/IOAPIC/LAPIC and PIT; one vCPU per --cpus with
//            CPUID from BuildGuestCpuid; the BSP entered straight into 64-bit mode;
//   loader/  the kernel, initrd and zero page;
//   acpi/    RSDP/XSDT/FADT/MADT/MCFG/DSDT (Linux finds its CPUs only through ACPI);
//   devices/ COM1, i8042, CMOS, ACPI sleep control, boot timer, PCI root bus.
//
// Threads and what they share:
//   - one thread per vCPU runs KVM_RUN and dispatches port-I/O and MMIO exits to the buses
//     (the buses and devices lock internally);
//   - the caller's thread runs the event loop (epoll): host input for the UART, SIGINT/SIGTERM
//     through a signalfd, and exit requests. Devices and vCPUs ask the VM to stop through
//     RequestExit, which only records the first reason and signals an eventfd; the event loop
//     then stops the vCPUs (Kick) and joins them. A gRPC control plane plugs into the same loop.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Vmm> vmm, Vmm::Create(config));
//   return vmm->Run();   // the process exit status

#ifndef VMMKIT_VMM_VMM_H_
#define VMMKIT_VMM_VMM_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/event_fd.h"
#include "base/scoped_fd.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/serial.h"
#include "kvm/kvm.h"
#include "kvm/memory_slots.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "memory/address_space.h"
#include "memory/guest_memory.h"
#include "vmm/config.h"

namespace vmmkit::vmm {

enum class ExitReason {
  kNone,
  kReset,        // The guest rebooted (i8042 reset / ACPI reset register): exit status 0.
  kPowerOff,     // ACPI S5 or a KVM shutdown system event: 0.
  kSignal,       // SIGINT or SIGTERM: 0 after a clean stop.
  kTripleFault,  // 3, with the vCPU's registers on stderr.
  kError,        // 1: KVM or the VMM failed.
};

class Vmm {
 public:
  // Builds the VM; nothing runs yet. INVALID_ARGUMENT for bad input files (main exits 2).
  static absl::StatusOr<std::unique_ptr<Vmm>> Create(const VmmConfig& config,
                                                     absl::Time process_start = absl::Now());
  ~Vmm();

  // Starts the vCPUs and runs the event loop until the VM stops; returns the exit status.
  int Run();
  // Thread-safe: asks the VM to stop. The first reason wins.
  void RequestExit(ExitReason reason, const std::string& detail = "");

 private:
  explicit Vmm(const VmmConfig& config, absl::Time start) : config_(config), start_(start) {}
  absl::Status Build();
  absl::Status SetUpDevices();
  absl::Status SetUpVcpus(GuestAddress entry, GuestAddress boot_params);
  void VcpuLoop(kvm::Vcpu* vcpu);
  void HandleExit(kvm::Vcpu* vcpu, const kvm::VcpuExit& exit);
  void WriteSerial(absl::Span<const uint8_t> bytes);
  void EventLoop();
  void StopVcpus();

  const VmmConfig config_;
  const absl::Time start_;

  std::unique_ptr<kvm::Kvm> kvm_;
  std::unique_ptr<kvm::Vm> vm_;
  std::unique_ptr<GuestMemory> memory_;
  AddressSpace system_memory_{"system"};
  std::unique_ptr<kvm::KvmMemorySlots> slots_;
  std::vector<std::unique_ptr<kvm::Vcpu>> vcpus_;
  std::vector<std::thread> vcpu_threads_;

  devices::Bus pio_{"pio"};
  devices::Bus mmio_{"mmio"};
  std::shared_ptr<devices::Serial16550> serial_;
  std::shared_ptr<devices::PciRootBus> pci_;
  std::unique_ptr<EventFd> serial_irq_;
  ScopedFd serial_out_;  // stdout (dup) or the --serial file; invalid for none.

  std::unique_ptr<EventFd> exit_event_;
  std::atomic<bool> stopping_{false};
  std::mutex exit_mu_;
  ExitReason exit_reason_ = ExitReason::kNone;  // Guarded by exit_mu_.
  std::string exit_detail_;                     // Guarded by exit_mu_.
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VMM_H_
