// File: virtio_pci/transport.h
// -----------------------------------------------------------------------------
// VirtioPciFunction is the virtio 1.x PCI transport (modern, non-transitional: device ID 0x1040 +
// type, revision 1) for one VirtioDevice. It is a pci::PciFunction: a configuration space with the
// virtio vendor capabilities (common, notify, ISR, device configuration, and the PCI
// configuration access window) and MSI-X, and one 64-bit memory BAR holding those regions and the
// MSI-X table and PBA. It owns what every device type shares: feature negotiation and the status
// byte (virtio::DeviceStatus), each queue's configuration up to a virtio::SplitQueue at DRIVER_OK,
// notifications, and interrupts (MSI-X vectors, the ISR byte). The device type implements
// VirtioDevice: its features, configuration space and queues' work.
//
//   auto fn = std::make_shared<VirtioPciFunction>(std::move(device), [&](uint64_t a, uint32_t d) {
//     (void)vm.SignalMsi(a, d, requester_id); });
//   RETURN_IF_ERROR(fn->PlaceBars(allocate));
//   RETURN_IF_ERROR(root_bus.AddDevice(slot, fn));
//   // The VMM routes guest accesses to BAR 0 (where DecodedBarAddress says) to BarRead/BarWrite.
//
// Everything the driver writes is hostile: unknown offsets and widths read as zero and write
// nothing, an out-of-range queue select shows a queue of size 0, vectors beyond the table read
// back as NO_VECTOR, a queue configuration SplitQueue refuses (or a device that fails to start)
// sets DEVICE_NEEDS_RESET and raises the configuration interrupt.
//
// Thread-safety: configuration and BAR accesses from any vCPU thread; the device's interrupts
// (the Interrupt it is given at Activate) from any thread. mu_ guards the register file, irq_mu_
// the interrupt state (order: mu_, irq_mu_, then the MSI-X table's own lock). The device's
// ReadConfig/WriteConfig run under mu_; its Activate, QueueNotify and Reset with neither lock
// held; SendMsi under irq_mu_ (it must not call back into the function).

#ifndef VMMKIT_VIRTIO_PCI_TRANSPORT_H_
#define VMMKIT_VIRTIO_PCI_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/mutex.h"
#include "pci/config_space.h"
#include "pci/function.h"
#include "pci/msix_table.h"
#include "virtio/device_status.h"
#include "virtio/queue.h"

namespace vmmkit::virtio_pci {

// Raises the interrupt of queue `queue`, or of the configuration (kConfigInterrupt).
using Interrupt = std::function<void(uint16_t queue)>;
inline constexpr uint16_t kConfigInterrupt = 0xffff;

// What a device gets at DRIVER_OK.
struct Activation {
  uint64_t features = 0;  // Negotiated.
  // Per queue, the SplitQueue the driver set up (nullopt for a queue it left disabled).
  std::vector<std::optional<virtio::SplitQueue>> queues;
  // Raises a queue's interrupt (any thread, until Reset returns).
  Interrupt interrupt;
  // The device hit an error it cannot go on from (a broken queue): the transport sets
  // DEVICE_NEEDS_RESET and raises the configuration interrupt (any thread, until Reset returns).
  std::function<void()> needs_reset;
};

// The device type's half of a virtio device.
class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;
  // The virtio device ID (2: block, 1: network, 19: socket) and its PCI class code.
  virtual uint16_t device_type() const = 0;
  virtual uint32_t class_code() const = 0;
  // The device type's feature bits; the transport adds VERSION_1, EVENT_IDX and INDIRECT_DESC.
  virtual uint64_t device_features() const = 0;
  virtual uint16_t num_queues() const = 0;
  // The largest queue the device offers (a power of two); the driver may choose a smaller one.
  virtual uint16_t max_queue_size() const = 0;
  // The device configuration space: its size (at most 4096) and accesses inside it.
  virtual uint32_t config_size() const = 0;
  virtual void ReadConfig(uint32_t offset, absl::Span<uint8_t> data) = 0;
  virtual void WriteConfig(uint32_t offset, absl::Span<const uint8_t> data) = 0;
  // DRIVER_OK. An error makes the device NEEDS_RESET.
  virtual absl::Status Activate(Activation activation) = 0;
  // The driver notified queue `index` (only after a successful Activate).
  virtual void QueueNotify(uint16_t index) = 0;
  // The driver reset the device (or it was detached): stop using the queues and the Interrupt.
  // Runs only after a successful Activate.
  virtual void Reset() = 0;
};

class VirtioPciFunction : public pci::PciFunction,
                          public std::enable_shared_from_this<VirtioPciFunction> {
 public:
  // BAR 0's layout: 64-bit memory, kBarSize bytes.
  static constexpr uint64_t kBarSize = 0x8000;
  static constexpr uint64_t kCommonOffset = 0x0000, kCommonSize = 0x40;
  static constexpr uint64_t kIsrOffset = 0x1000, kIsrSize = 4;
  static constexpr uint64_t kDeviceOffset = 0x2000, kDeviceSize = 0x1000;
  static constexpr uint64_t kNotifyOffset = 0x3000, kNotifyMultiplier = 4;
  static constexpr uint64_t kMsixTableOffset = 0x4000, kMsixPbaOffset = 0x6000;
  static constexpr uint16_t kMaxQueues = 256;
  static constexpr uint16_t kNoVector = 0xffff;

  // Sends one MSI (the vector's address and data as the guest programmed them). May be null for a
  // function that never interrupts (tests).
  using SendMsi = std::function<void(uint64_t address, uint32_t data)>;

  // The device must offer 1..kMaxQueues queues, a power-of-two queue size and a configuration of
  // at most kDeviceSize bytes: anything else is INVALID_ARGUMENT.
  static absl::StatusOr<std::shared_ptr<VirtioPciFunction>> Create(
      std::shared_ptr<VirtioDevice> device, SendMsi send_msi);

  // pci::PciDevice.
  uint32_t ConfigRead(uint16_t reg) override;
  void ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) override;
  // pci::PciFunction.
  absl::Status PlaceBars(
      const std::function<absl::StatusOr<uint64_t>(const pci::Bar&)>& allocate) override;
  std::string Describe() override;
  void Detach() override;

  // A guest access at `offset` into BAR 0 (1, 2, 4 or 8 bytes).
  void BarRead(uint64_t offset, absl::Span<uint8_t> data);
  void BarWrite(uint64_t offset, absl::Span<const uint8_t> data);
  // Where BAR 0 decodes now (memory decoding on, placed), for the VMM's MMIO trap.
  std::optional<uint64_t> bar_address();

  // A queue's interrupt as the driver has programmed it now, for a VMM that has the kernel deliver
  // it straight from an eventfd (a KVM irqfd on an MSI route) instead of through Interrupt.
  struct QueueInterrupt {
    bool routable = false;  // MSI-X on and a vector in the table assigned to the queue.
    bool masked = true;     // Its entry or the whole function is masked.
    uint64_t address = 0;   // The entry's message (meaningful when routable).
    uint32_t data = 0;
    friend bool operator==(const QueueInterrupt&, const QueueInterrupt&) = default;
  };
  // Per queue. Takes only the interrupt state's locks (irq_mu_, the table's), never mu_: callable
  // under a VMM lock that ranks above mu_.
  std::vector<QueueInterrupt> QueueInterrupts() ABSL_LOCKS_EXCLUDED(irq_mu_);

  // The device status byte, as the driver reads it.
  uint8_t status();

 private:
  struct QueueConfig {
    uint16_t size;
    uint16_t vector = kNoVector;
    bool enabled = false;
    uint64_t desc = 0, driver = 0, device = 0;
  };
  VirtioPciFunction(std::shared_ptr<VirtioDevice> device, SendMsi send_msi, uint16_t vectors);
  absl::Status BuildConfigSpace() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // What an access asks of the device, done once mu_ is released (the device's Activate, Reset
  // and QueueNotify may take time and locks of their own).
  struct Action {
    bool reset = false;     // Reset the device (it was active).
    bool activate = false;  // DRIVER_OK: activate it with `features` and `queues`.
    uint64_t epoch = 0;     // epoch_ at DRIVER_OK: a reset or detach since undoes the activation.
    bool config_irq = false;
    std::optional<uint16_t> notify;  // A queue the driver notified.
    uint64_t features = 0;
    std::vector<std::optional<virtio::SplitQueue>> queues;
  };
  void BarAccess(bool write, uint64_t offset, absl::Span<uint8_t> data, Action& action)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t CommonRead(uint64_t offset, size_t len) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CommonWrite(uint64_t offset, size_t len, uint64_t value, Action& action)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DriverOk(Action& action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ResetLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(Action action) ABSL_LOCKS_EXCLUDED(mu_, irq_mu_);
  // The PCI configuration access window (VIRTIO_PCI_CAP_PCI_CFG, at pci_cfg_): its data dword.
  void PciCfgAccess(bool write, uint32_t& value, Action& action) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Interrupts.
  void Signal(uint16_t queue);
  void SignalVector(uint16_t vector);
  void OnVectorChanged(uint16_t index, const pci::MsixVector& v);
  void DeliverPendingLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(irq_mu_);
  // The device asked for a reset while active since `epoch`.
  void OnNeedsReset(uint64_t epoch) ABSL_LOCKS_EXCLUDED(mu_, irq_mu_);

  const std::shared_ptr<VirtioDevice> device_;
  const SendMsi send_msi_;
  const uint16_t vectors_;
  pci::MsixTable msix_;

  Mutex mu_;
  pci::ConfigSpace config_ ABSL_GUARDED_BY(mu_);
  uint8_t pci_cfg_ ABSL_GUARDED_BY(mu_) = 0;  // Offset of the PCI_CFG capability.
  virtio::DeviceStatus status_ ABSL_GUARDED_BY(mu_);
  uint32_t device_feature_select_ ABSL_GUARDED_BY(mu_) = 0;
  uint32_t driver_feature_select_ ABSL_GUARDED_BY(mu_) = 0;
  uint16_t queue_select_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<QueueConfig> queues_ ABSL_GUARDED_BY(mu_);
  bool active_ ABSL_GUARDED_BY(mu_) = false;  // Activate succeeded; not reset since.
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;   // Bumped by every reset and by Detach.
  bool detached_ ABSL_GUARDED_BY(mu_) = false;

  Mutex irq_mu_;
  uint8_t isr_ ABSL_GUARDED_BY(irq_mu_) = 0;
  uint16_t config_vector_ ABSL_GUARDED_BY(irq_mu_) = kNoVector;
  std::vector<uint16_t> queue_vectors_ ABSL_GUARDED_BY(irq_mu_);
  bool msix_enabled_ ABSL_GUARDED_BY(irq_mu_) = false;
  bool function_mask_ ABSL_GUARDED_BY(irq_mu_) = false;
  std::vector<bool> pending_ ABSL_GUARDED_BY(irq_mu_);
};

}  // namespace vmmkit::virtio_pci

#endif  // VMMKIT_VIRTIO_PCI_TRANSPORT_H_
