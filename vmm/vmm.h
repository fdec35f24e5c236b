// File: vmm/vmm.h
// -----------------------------------------------------------------------------
// Vmm assembles one x86-64 Linux VM from vmmkit's libraries and runs it:
//   Machine        the KVM VM, guest RAM and its address space, buses, PCI root bus, BAR
//                  allocators and MSI routes (vmm/machine.h);
//   loader/, acpi/ the kernel, initrd and zero page; RSDP/XSDT/FADT/MADT/MCFG/DSDT; the reset
//                  stub at f000:fff0;
//   devices/       COM1, i8042, CMOS, ACPI sleep control and events, boot timer;
//   DeviceManager  PCI functions (--device, AddDevice), passed through with passthrough/;
//   vCPUs          one thread each, CPUID from BuildGuestCpuid, the BSP entered in 64-bit mode;
//   EventLoop      the control thread (vmm/event_loop.h).
//
// Threads and what they share (docs/architecture.md has the whole model and the lock order):
//   - one thread per vCPU runs KVM_RUN and dispatches port-I/O and MMIO exits to the machine's
//     buses (the buses and devices lock internally);
//   - the caller's thread runs the event loop: console input and output, SIGINT/SIGTERM through a
//     signalfd, exit requests, and control-plane work. Devices and vCPUs ask the VM to stop
//     through RequestExit, which only records the first reason and signals an eventfd; the loop
//     then stops and Run() joins the vCPUs.
//   - with --api-socket/--api-tcp, gRPC threads serve proto/vmm/v1 (ApiServer). They reach the VM
//     only through VmController, which runs each request on the event loop and waits for it.
//     Pause parks the vCPU threads on a condition variable outside KVM_RUN.
//   - a passed-through function's config space is written from vCPU threads, which moves its
//     BARs' slots and traps and changes MSI routes under the machine lock; functions are attached
//     on the loop and detached on the ejecting vCPU's thread, under the device manager's lock.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Vmm> vmm, Vmm::Create(config));
//   return vmm->Run();   // the process exit status

#ifndef VMMKIT_VMM_VMM_H_
#define VMMKIT_VMM_VMM_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"
#include "devices/acpi_events.h"
#include "devices/legacy.h"
#include "devices/serial.h"
#include "irq/irqfd.h"
#include "kvm/vcpu.h"
#include "pci/hotplug_slots.h"
#include "vmm/boot_vcpus.h"
#include "vmm/config.h"
#include "vmm/console_output.h"
#include "vmm/controller.h"
#include "vmm/device_manager.h"
#include "vmm/event_loop.h"
#include "vmm/machine.h"
#include "vmm/vcpu_set.h"

namespace vmmkit::vmm {

enum class ExitReason {
  kNone,
  kReset,        // The guest rebooted (i8042 reset / ACPI reset register): exit status 0.
  kPowerOff,     // ACPI S5 or a KVM shutdown system event: 0.
  kSignal,       // SIGINT or SIGTERM: 0 after a clean stop.
  kTripleFault,  // 3, with the vCPU's registers on stderr.
  kError,        // 1: KVM or the VMM failed.
  kApiShutdown,  // 0: a Shutdown request on the control plane.
  kDebugExit,    // (V << 1) | 1: the guest wrote V to the debug-exit port.
};

class Vmm : private VmOperations {
 public:
  // Starts a control-plane transport (main.cc: the gRPC server) over the VM's controller, before
  // the VM is built so that it answers early (requests wait for the event loop). What it returns
  // is kept until the loop has closed, so that requests waiting on it are released first. The
  // VMM library itself does not depend on any transport.
  using ApiStarter = std::function<absl::StatusOr<std::shared_ptr<void>>(VmController&)>;

  // Builds the VM; nothing runs yet. INVALID_ARGUMENT for bad input files (main exits 2). Blocks
  // SIGINT and SIGTERM in the calling thread (before any thread starts): Run() reads them.
  // Without `start_api` there is no control plane.
  static absl::StatusOr<std::unique_ptr<Vmm>> Create(const VmmConfig& config,
                                                     absl::Time process_start = absl::Now(),
                                                     const ApiStarter& start_api = nullptr);
  ~Vmm();

  // Starts the vCPUs and runs the event loop until the VM stops; returns the exit status.
  int Run();
  // Thread-safe: asks the VM to stop. The first reason wins.
  // `debug_exit_value`: kDebugExit's V.
  void RequestExit(ExitReason reason, const std::string& detail = "",
                   uint32_t debug_exit_value = 0);

 private:
  explicit Vmm(const VmmConfig& config, absl::Time start) : config_(config), start_(start) {}
  absl::Status StartApi(const ApiStarter& start_api);

  // VmOperations (called on the event loop by the controller).
  absl::Status PauseVcpus() override;
  absl::Status ResumeVcpus() override;
  absl::Status RequestGuestPowerOff() override;
  void Stop(const std::string& reason) override;
  VmStatus Describe() const override;
  absl::StatusOr<DeviceSummary> AddDevice(const AddDeviceSpec& spec) override;
  absl::StatusOr<DeviceSummary> BeginRemoveDevice(const std::string& id) override;
  bool CancelRemoveDevice(const std::string& id) override;
  absl::Status Build();
  absl::Status SetUpDevices();
  absl::Status SetUpPassthrough();
  std::vector<DeviceSummary> PlatformDevices() const;  // Their ids are reserved.
  Resources CountResources() const;
  absl::Status SetUpVcpus(const BootEntry& boot);
  // Loads a Linux kernel as config_.kernel_entry says (decompressing a bzImage on the host for
  // 64bit and pvh); the entry to start the boot processor at.
  absl::StatusOr<BootEntry> LoadLinuxKernel(absl::Span<const uint8_t> kernel,
                                            absl::Span<const uint8_t> initrd, GuestAddress rsdp);
  void HandleExit(kvm::Vcpu& vcpu, const kvm::VcpuExit& exit);  // On its vCPU's thread.
  // The loop's host inputs: signals, exit requests, the console's output and input.
  absl::Status WatchHost();
  void FlushConsole();      // On the loop.
  void ReadConsoleInput();  // On the loop: stdin is readable.
  void FeedConsoleInput();  // On the loop: into the UART as its FIFO takes it.
  void RtcTick();           // On the loop, at each second of the host clock: the RTC's update.
  absl::Status OpenConsole();

  const VmmConfig config_;
  const absl::Time start_;

  std::unique_ptr<Machine> machine_;
  std::unique_ptr<VcpuSet> vcpus_;

  std::shared_ptr<devices::Serial16550> serial_;
  std::unique_ptr<irq::Irqfd> serial_irq_;  // COM1's IRQ 4.
  std::unique_ptr<irq::Irqfd> ged_irq_;     // The GED's interrupt.
  std::shared_ptr<devices::CmosRtc> rtc_;
  std::unique_ptr<irq::Irqfd> rtc_irq_;  // The RTC's IRQ 8.
  std::shared_ptr<devices::AcpiEvents> acpi_events_;
  std::shared_ptr<pci::HotplugSlots> hotplug_slots_;

  // PCI functions (--device, AddDevice); destroyed before the machine.
  std::unique_ptr<DeviceManager> device_manager_;
  std::unique_ptr<ConsoleOutput> console_out_;  // Null for --serial=none.
  bool console_retry_ = false;                  // Loop thread only: a flush retry is due.
  bool rtc_started_ = false;                    // Loop thread only: RtcTick has scheduled.
  std::vector<uint8_t> console_in_;             // Loop thread only: input the UART has not taken.
  ScopedFd signal_fd_;

  // The control thread: host input, work from other threads, timers (see the threads note).
  std::unique_ptr<EventLoop> loop_;

  std::unique_ptr<VmController> controller_;
  // The thread that starts the transport start_api returns, keeps it, and destroys it when
  // stop_api_ is notified (see StartApi).
  std::thread api_thread_;
  absl::Notification stop_api_;

  std::unique_ptr<EventFd> exit_event_;
  Mutex exit_mu_;  // The first exit request wins.
  ExitReason exit_reason_ ABSL_GUARDED_BY(exit_mu_) = ExitReason::kNone;
  std::string exit_detail_ ABSL_GUARDED_BY(exit_mu_);
  uint32_t debug_exit_value_ ABSL_GUARDED_BY(exit_mu_) = 0;
  // When each boot phase ended (--boot_timer): written by Build and Run before the vCPUs start,
  // read on the event loop after the boot processor's first entry.
  struct BootPhases {
    absl::Time machine, loaded, built;
  } phases_;
  void LogBootPhases(absl::Time first_entry);
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VMM_H_
