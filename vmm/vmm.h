// File: vmm/vmm.h
// -----------------------------------------------------------------------------
// Vmm assembles one x86-64 Linux VM from vmmkit's libraries and runs it:
//   memory/  guest RAM (memfd), an AddressSpace whose RAM follows into KVM through
//   kvm/     KvmMemorySlots; the in-kernel PIC/IOAPIC/LAPIC and PIT; one vCPU per --cpus with
//            CPUID from BuildGuestCpuid; the BSP entered straight into 64-bit mode;
//   loader/  the kernel, initrd and zero page;
//   acpi/    RSDP/XSDT/FADT/MADT/MCFG/DSDT (Linux finds its CPUs only through ACPI);
//   devices/ COM1, i8042, CMOS, ACPI sleep control, boot timer, PCI root bus;
//   vfio/, passthrough/, iommu/  host PCI functions given with --device: one VFIO container for
//            all of them with guest RAM DMA-mapped into it (DmaMappingListener), each function a
//            VfioPciDevice on the root bus, MSI/MSI-X through one MsiRoutes table.
//
// Threads and what they share:
//   - one thread per vCPU runs KVM_RUN and dispatches port-I/O and MMIO exits to the buses
//     (the buses and devices lock internally);
//   - the caller's thread runs the event loop (epoll): host input for the UART, SIGINT/SIGTERM
//     through a signalfd, exit requests, and control-plane work. Devices and vCPUs ask the VM to
//     stop through RequestExit, which only records the first reason and signals an eventfd; the
//     event loop then stops the vCPUs (Kick) and joins them.
//   - with --api-socket/--api-tcp, gRPC threads serve proto/vmm/v1 (ApiServer). They reach the VM
//     only through VmController, which queues each request onto the event loop (RunOnLoop: a
//     mutex-protected queue and an eventfd) and waits for it; so the VM's state is changed by the
//     loop thread alone. Pause parks the vCPU threads on a condition variable outside KVM_RUN.
//   - a passed-through device's config space is written from vCPU threads, and that moves its
//     BARs' KVM slots and traps and changes GSI routes: system_memory_, the buses' device lists
//     and msi_routes_ change only under machine_mu_ once the vCPUs run.
//   - hotplug: devices are attached on the loop, and detached on the vCPU thread of the guest's
//     eject (or at teardown), both under passthrough_mu_ (see below).
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Vmm> vmm, Vmm::Create(config));
//   return vmm->Run();   // the process exit status

#ifndef VMMKIT_VMM_VMM_H_
#define VMMKIT_VMM_VMM_H_

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/event_fd.h"
#include "base/scoped_fd.h"
#include "devices/acpi_events.h"
#include "devices/bus.h"
#include "devices/pci.h"
#include "devices/serial.h"
#include "iommu/msi_routes.h"
#include "kvm/kvm.h"
#include "kvm/memory_slots.h"
#include "kvm/vcpu.h"
#include "kvm/vm.h"
#include "memory/address_allocator.h"
#include "memory/address_space.h"
#include "memory/guest_memory.h"
#include "passthrough/vfio_pci_device.h"
#include "vfio/container.h"
#include "vfio/dma_listener.h"
#include "vfio/group.h"
#include "vmm/api_server.h"
#include "vmm/config.h"
#include "vmm/console_output.h"
#include "vmm/controller.h"
#include "vmm/event_loop.h"

namespace vmmkit::vmm {

enum class ExitReason {
  kNone,
  kReset,        // The guest rebooted (i8042 reset / ACPI reset register): exit status 0.
  kPowerOff,     // ACPI S5 or a KVM shutdown system event: 0.
  kSignal,       // SIGINT or SIGTERM: 0 after a clean stop.
  kTripleFault,  // 3, with the vCPU's registers on stderr.
  kError,        // 1: KVM or the VMM failed.
  kApiShutdown,  // 0: a Shutdown request on the control plane.
};

class Vmm : private VmOperations {
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
  absl::Status StartApi();

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
  void TearDownPassthrough();
  struct Passthrough;
  // On the loop (or in Build): all or nothing; `hotplug` tells the guest.
  absl::StatusOr<DeviceSummary> AttachPassthrough(const AddDeviceSpec& spec, bool hotplug);
  void DetachPassthroughLocked(size_t index);  // passthrough_mu_ held.
  DeviceSummary SummaryLocked(const Passthrough& p) const;
  // On the vCPU thread whose _EJ0 wrote PCEJ: detaches the device in `slot` (if any) and reports
  // it removed.
  void OnGuestEjected(uint8_t slot);
  // Tells the guest of the device added in `slot`, if it is still there.
  void NotifyAdded(uint8_t slot, const std::weak_ptr<passthrough::VfioPciDevice>& added);
  std::vector<DeviceSummary> PlatformDevices() const;  // Their ids are reserved.
  Resources CountResources() const;
  absl::Status SetUpVcpus(GuestAddress entry, GuestAddress boot_params);
  void VcpuLoop(kvm::Vcpu* vcpu);
  void HandleExit(kvm::Vcpu* vcpu, const kvm::VcpuExit& exit);
  // The loop's host inputs: signals, exit requests, the console's output and input.
  absl::Status WatchHost();
  void FlushConsole();      // On the loop.
  void ReadConsoleInput();  // On the loop: stdin is readable.
  void FeedConsoleInput();  // On the loop: into the UART as its FIFO takes it.
  absl::Status OpenConsole();
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
  std::unique_ptr<EventFd> ged_irq_;  // The GED's interrupt (an irqfd).
  std::shared_ptr<devices::AcpiEvents> acpi_events_;

  // Passed-through host PCI functions (--device, AddDevice). They, the container, groups, DMA
  // listener and routes change under passthrough_mu_: on the loop (or in Build) as devices are
  // added, on the ejecting vCPU's thread as the guest releases one; the container, listener and
  // routes exist while at least one device does. Lock order: passthrough_mu_, then machine_mu_.
  struct Passthrough {
    std::string id;
    std::string host_bdf;
    uint8_t slot;
    int group_id;
    std::shared_ptr<passthrough::VfioPciDevice> device;
    std::vector<std::pair<bool, uint64_t>> bars;  // (I/O, address) given out by PlaceBars.
    std::optional<absl::Time> removing;           // When the guest was asked to release it.
  };
  struct GroupRef {
    std::shared_ptr<vfio::VfioGroup> group;
    int devices = 0;
  };
  mutable std::mutex machine_mu_;  // See the threads note above.
  mutable std::mutex passthrough_mu_;
  std::shared_ptr<vfio::VfioContainer> vfio_container_;
  std::map<int, GroupRef> vfio_groups_;  // By IOMMU group id.
  std::unique_ptr<vfio::DmaMappingListener> dma_listener_;
  std::unique_ptr<iommu::MsiRoutes> msi_routes_;
  std::vector<Passthrough> passthrough_;
  std::unique_ptr<AddressAllocator> mmio_space_, io_space_;  // For BARs.
  uint32_t next_device_number_ = 1;
  std::unique_ptr<ConsoleOutput> console_out_;  // Null for --serial=none.
  bool console_retry_ = false;                  // Loop thread only: a flush retry is due.
  std::vector<uint8_t> console_in_;             // Loop thread only: input the UART has not taken.
  ScopedFd signal_fd_;

  // Pause: vCPU threads park here while paused_ (outside KVM_RUN).
  std::mutex pause_mu_;
  std::condition_variable pause_cv_;
  bool paused_ = false;  // Guarded by pause_mu_.
  size_t parked_ = 0;    // Guarded by pause_mu_.
  std::vector<std::atomic<int64_t>> vcpu_tids_;

  // The control thread: host input, work from other threads, timers (see the threads note).
  std::unique_ptr<EventLoop> loop_;

  std::unique_ptr<VmController> controller_;
  std::unique_ptr<ApiServer> api_server_;

  std::unique_ptr<EventFd> exit_event_;
  std::atomic<bool> stopping_{false};
  std::mutex exit_mu_;
  ExitReason exit_reason_ = ExitReason::kNone;  // Guarded by exit_mu_.
  std::string exit_detail_;                     // Guarded by exit_mu_.
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VMM_H_
