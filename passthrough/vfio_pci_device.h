// File: passthrough/vfio_pci_device.h
// -----------------------------------------------------------------------------
// VfioPciDevice gives a guest a host PCI function bound to vfio-pci. It assembles the pieces of
// this package with the VMM's machine:
//
//   - configuration space: VfioPciConfig (emulated, relocatable BARs; filtered capabilities);
//   - BARs: the mmappable parts of each memory BAR become KVM memory slots at the address the
//     guest programmed (AddressSpace device memory, never DMA-mapped); everything else in the BAR
//     (the MSI-X table and PBA, which pci::MsixTable emulates, and any part VFIO will not let us
//     map) traps to the VMM and is forwarded with region reads and writes. I/O BARs always trap.
//     When the guest moves a BAR or turns decoding off, slots and traps follow.
//   - interrupts: MSI and MSI-X messages the guest programs become KVM GSI routes with irqfds
//     (irq/'s MsiRoutes), bound to the eventfds VFIO signals; masking detaches the irqfd (KVM
//     delivers what arrived meanwhile when it is attached again, and until then the guest sees
//     it in the MSI-X PBA). Under the lab's KVM and VFIO a mask and unmask costs half of what
//     QEMU's way does (the irqfd kept, VFIO pointed at another eventfd and back: two
//     VFIO_DEVICE_SET_IRQS, each re-requesting the host IRQ): //tests/lab:msi_mask_benchmark.
//     Without MSI/MSI-X, INTx goes
//     to a level-triggered GSI through an irqfd whose resample eventfd unmasks the device in VFIO
//     when the guest EOIs, so the device cannot storm the guest.
//   - the device is reset when it is attached and when it is detached (if the kernel can).
//
// DMA is not this class's job: the VMM maps guest RAM into the device's container with
// vfio/'s DmaMappingListener, once per container.
//
//   ASSIGN_OR_RETURN(auto dev, VfioPciDevice::Create(std::move(vfio_device), machine, options));
//   RETURN_IF_ERROR(dev->PlaceBars(allocator));        // the firmware's job: initial addresses
//   RETURN_IF_ERROR(pci_root->AddDevice(slot, dev));   // the guest sees it
//
// Thread-safety: config and BAR accesses come from any vCPU thread. Everything that changes the
// machine (the address space, the buses' device lists, GSI routes) happens under
// `PassthroughMachine::lock`, which the VMM also holds for its own changes to those objects.
// A guest's mistakes (a BAR over RAM or another device, a bogus MSI message) are logged and
// refused; they never reach outside the device's own resources.

#ifndef VMMKIT_PASSTHROUGH_VFIO_PCI_DEVICE_H_
#define VMMKIT_PASSTHROUGH_VFIO_PCI_DEVICE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/alongside.h"
#include "base/event_fd.h"
#include "base/log.h"
#include "base/mutex.h"
#include "devices/bus.h"
#include "irq/irq_lines.h"
#include "irq/msi_routes.h"
#include "kvm/vm.h"
#include "memory/address_space.h"
#include "passthrough/vfio_pci_config.h"
#include "pci/msix_table.h"
#include "pci/root_bus.h"
#include "vfio/device.h"

namespace vmmkit::passthrough {

// The parts of the VMM's machine a passed-through device plugs into; none owned, all must
// outlive the device.
struct PassthroughMachine {
  kvm::Vm& vm;
  AddressSpace& memory;  // Guest-physical space: BAR mappings appear here.
  devices::Bus& mmio;    // Traps for memory BARs.
  devices::Bus& pio;     // Traps for I/O BARs.
  irq::MsiRoutes& msi_routes;
  irq::IrqLines& irq_lines;  // INTx: the irqchip input (a KVM irqfd, or the userspace IOAPIC's).
  Mutex& lock;               // Serializes changes to all of the above (the machine lock).
};

struct VfioPciDeviceOptions {
  std::string id;                    // The VMM's name for the device, used in logs ("hostdev0").
  uint32_t device_number = 0;        // Unique per VMM: keys this device's vectors in MsiRoutes.
  uint16_t guest_requester_id = 0;   // bus << 8 | device << 3 | function, as the guest sees it.
  std::optional<uint32_t> intx_gsi;  // The irqchip pin for INTx; none: INTx is not offered.
  // vfio-pci itself resets a device that supports a reset (VfioDevice::info().can_reset()) when
  // its fd is first opened and when it is last closed, so by default no reset is added here.
  // `explicit_reset` also issues VFIO_DEVICE_RESET on attach and on detach: for a device fd that
  // outlives this object, or a VFIO driver that does not reset on open and close.
  bool explicit_reset = false;
};

class VfioPciDevice : public pci::PciFunction, public std::enable_shared_from_this<VfioPciDevice> {
 public:
  // Takes the opened vfio-pci device (which vfio-pci reset as it opened). Reads its config space
  // and BARs, maps what can be mapped and wires INTx. FAILED_PRECONDITION for a device that cannot
  // be passed through; INVALID_ARGUMENT for an incomplete machine. On failure nothing is left
  // attached.
  static absl::StatusOr<std::shared_ptr<VfioPciDevice>> Create(
      std::unique_ptr<vfio::VfioDevice> device, PassthroughMachine machine,
      VfioPciDeviceOptions options);
  // Detach(), then closes the device fd (vfio-pci resets the device) while KVM finishes what
  // Detach left it (the INTx irqfd's teardown), and waits for that.
  // The last reference is gone, so no other thread can reach the object: its members are read
  // without the machine lock, which a VMM may hold for a while (unmapping guest RAM).
  ~VfioPciDevice() override ABSL_NO_THREAD_SAFETY_ANALYSIS;
  VfioPciDevice(const VfioPciDevice&) = delete;
  VfioPciDevice& operator=(const VfioPciDevice&) = delete;

  // Unplugs the function from the machine now: its interrupts (routes, irqfds, VFIO triggers),
  // BAR slots and traps; then stops its DMA (bus mastering off). Two slow parts are left to
  // finish by destruction, which waits for both: closing the device fd, which makes vfio-pci reset
  // the device (mostly waiting on hardware), and KVM's teardown of the INTx irqfd (grace periods),
  // which runs on a helper meanwhile; the device can no longer raise INTx either way. So a VMM may
  // destroy the device on another thread while it unmaps guest RAM. Afterwards a vCPU that still
  // holds the device reads all-ones from its config space and changes nothing. Idempotent.
  void Detach() override;

  // The firmware's job, done before the guest runs: gives each BAR an address from `allocate`
  // (called with the BAR; returns a naturally aligned guest address) and writes it to the BAR.
  // Decoding stays off until the guest's driver enables the device.
  absl::Status PlaceBars(
      const std::function<absl::StatusOr<uint64_t>(const pci::Bar&)>& allocate) override;
  // "vfio-pci VVVV:DDDD, interrupts: MODE".
  std::string Describe() override;

  // pci::PciDevice.
  uint32_t ConfigRead(uint16_t reg) override;
  void ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) override {
    if (!detached_) config_->ConfigWrite(reg, value, byte_mask);
  }

  const std::string& id() const { return options_.id; }
  const vfio::VfioDevice& vfio_device() const { return *device_; }
  std::vector<VirtualBar> bars() const { return config_->bars(); }
  // Which interrupt mode is live: "intx", "msi", "msix" or "none".
  std::string interrupt_mode() const;

 private:
  class BarTrap;
  enum class IrqMode { kNone, kIntx, kMsi, kMsix };
  struct Bar {
    VirtualBar bar;
    std::shared_ptr<vfio::MappedRegion> mapped;  // Null: nothing mappable; all of it traps.
    std::vector<std::pair<uint64_t, uint64_t>> slot_areas;  // (offset, size): KVM slots.
    std::optional<uint64_t> placed;  // Where the guest sees it now (traps and slots live).
  };

  VfioPciDevice(std::unique_ptr<vfio::VfioDevice> device, PassthroughMachine machine,
                VfioPciDeviceOptions options)
      : device_(std::move(device)), machine_(machine), options_(std::move(options)) {}
  absl::Status Init();
  absl::Status PrepareBar(const VirtualBar& vbar) ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  // Callbacks from the config space and the MSI-X table (vCPU threads; take machine_.lock).
  void OnBarMoved(const VirtualBar& bar, std::optional<uint64_t> from, std::optional<uint64_t> to);
  void OnMsiChanged(const MsiState& msi);
  void OnMsixChanged(bool enabled, bool function_mask);
  void OnMsixVector(uint16_t index, const pci::MsixVector& vector);
  // machine_.lock held for these.
  void Unplace(Bar& bar) ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  std::string SlotName(const Bar& bar, uint64_t offset) const;
  absl::Status Place(Bar& bar, uint64_t address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  absl::Status EnableIntx() ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  void DisableIntx() ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  absl::Status EnableMsi(const MsiState& msi) ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  absl::Status EnableMsix() ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  // Gives MSI-X vector `index` its eventfd, masked route and VFIO trigger, once.
  absl::Status WireMsixVector(uint16_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  // Binds or unbinds the vector's irqfd after the table's or the function's mask changed; wires
  // a vector on its first unmask.
  absl::Status ApplyMsixMask(uint16_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  // What went wrong setting up the guest's interrupts: logged, and shown by Describe().
  void IrqError(absl::string_view what, const absl::Status& s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  void DisableVectors(uint32_t vfio_index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  // Sets the PBA's bits from the masked vectors' eventfds, before the guest reads it.
  void RefreshPending();
  // The MSI capability's pending bits, from the masked vectors' eventfds.
  uint32_t MsiPending();
  // Which of vector_fds_ hold a count (what VFIO signalled since the vector's irqfd was last
  // unbound); poll() reads that without consuming it.
  std::vector<bool> SignalledVectors() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(machine_.lock);
  irq::MsiVector Key(uint32_t vector, bool msix) const {
    return {options_.device_number, (msix ? 0x10000u : 0u) + vector};
  }
  void BarAccess(uint32_t index, bool write, uint64_t offset, uint8_t* data, size_t len);

  std::unique_ptr<vfio::VfioDevice> device_;
  const PassthroughMachine machine_;
  const VfioPciDeviceOptions options_;
  std::shared_ptr<VfioPciConfig> config_;
  std::unique_ptr<pci::MsixTable> msix_table_;
  std::optional<pci::MsixCapability> msix_;
  std::optional<uint16_t> msi_pending_register_;

  // Set once, under *machine_.lock; read without it only to skip work early (the callbacks that
  // change the machine check it again under the lock).
  std::atomic<bool> detached_ = false;
  std::array<std::optional<Bar>, 6> bars_ ABSL_GUARDED_BY(machine_.lock);
  IrqMode mode_ ABSL_GUARDED_BY(machine_.lock) = IrqMode::kNone;
  bool intx_available_ = false;  // Set in Init, before the device is shared.
  std::unique_ptr<EventFd> intx_trigger_ ABSL_GUARDED_BY(machine_.lock);
  std::unique_ptr<EventFd> intx_resample_ ABSL_GUARDED_BY(machine_.lock);
  // From Detach: KVM deassigning the INTx irqfd.
  std::unique_ptr<Alongside> intx_teardown_ ABSL_GUARDED_BY(machine_.lock);
  // MSI or MSI-X, by vector; for MSI-X null until the vector's first unmask.
  std::vector<std::unique_ptr<EventFd>> vector_fds_ ABSL_GUARDED_BY(machine_.lock);
  uint32_t vfio_vectors_ ABSL_GUARDED_BY(machine_.lock) = 0;  // MSI-X vectors VFIO has room for.
  // Eventfds of routes whose teardown failed: KVM may still hold them as irqfds.
  std::vector<std::unique_ptr<EventFd>> lingering_fds_ ABSL_GUARDED_BY(machine_.lock);
  // The last interrupt setup failure, until a setup succeeds.
  std::string irq_error_ ABSL_GUARDED_BY(machine_.lock);
  MsiState msi_ ABSL_GUARDED_BY(machine_.lock);  // As last applied.
  bool msix_function_mask_ ABSL_GUARDED_BY(machine_.lock) = false;
  // What the guest's programming of the device makes us log (a BAR it put over RAM, a message
  // that cannot be routed): it can do that in a loop.
  RateLimitedLog guest_log_;
};

}  // namespace vmmkit::passthrough

#endif  // VMMKIT_PASSTHROUGH_VFIO_PCI_DEVICE_H_
