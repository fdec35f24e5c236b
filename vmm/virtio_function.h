// File: vmm/virtio_function.h
// -----------------------------------------------------------------------------
// MachineVirtioFunction puts a virtio_pci::VirtioPciFunction on the machine: it is the PciFunction
// the device manager plugs into a slot, and after every configuration write it makes the machine
// agree with where BAR 0 decodes now: a trap on the MMIO bus for the whole BAR, and a KVM
// ioeventfd on each queue's notify address bound to that queue's notifier eventfd. A guest that
// moves the BAR or turns memory decoding off moves or removes both; one that puts the BAR over
// another device gets neither (logged), as if it decoded nowhere.
//
// Queues whose interrupts a kernel backend raises on an eventfd (vhost's call fds) can have KVM
// deliver them straight from that eventfd (DirectInterrupts): each such queue gets an MSI route
// carrying its vector's message, with the eventfd bound to it as an irqfd while the vector is
// usable and unmasked, kept in step after every write to the common configuration, the MSI-X
// table or the configuration space (interrupt remapping: the machine's routes retranslate
// themselves). While a queue's vector is masked, has none, or could not be routed, the eventfd is
// unbound and the device relays it through the transport (which keeps the pending bit) as before;
// the relay idles while KVM holds the eventfd (KVM's irqfd waits first and consumes the count).
//
//   auto fn = std::make_shared<MachineVirtioFunction>(machine, transport, notifiers, "disk0");
//   device_manager places its BARs and adds it to the root bus.
//
// Thread-safety: configuration and BAR writes from any vCPU thread. The trap, ioeventfds and
// routes change under the machine lock, which is taken after the transport's locks are released
// (lock order: the machine's, then the transport's, which Sync and SyncInterrupts take for the
// BAR's address and the queues' vectors).

#ifndef VMMKIT_VMM_VIRTIO_FUNCTION_H_
#define VMMKIT_VMM_VIRTIO_FUNCTION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "base/log.h"
#include "base/mutex.h"
#include "irq/msi.h"
#include "pci/function.h"
#include "virtio_pci/transport.h"
#include "vmm/machine.h"

namespace vmmkit::vmm {

// Queues whose interrupts KVM may deliver from an eventfd.
struct DirectInterrupts {
  // Per queue: the eventfd its interrupts are raised on, or null (through the transport only).
  // They must outlive the function. Empty: none.
  std::vector<const EventFd*> fds;
  uint32_t device_number = 0;  // Unique in the VM: keys the routes (PciSlot::device_number).
  uint16_t requester_id = 0;   // The function's, for interrupt remapping.
};

class MachineVirtioFunction : public pci::PciFunction,
                              public std::enable_shared_from_this<MachineVirtioFunction> {
 public:
  // `notifiers[i]` wakes queue i (the device's); they must outlive the function.
  MachineVirtioFunction(Machine& machine, std::shared_ptr<virtio_pci::VirtioPciFunction> transport,
                        std::vector<const EventFd*> notifiers, std::string id,
                        DirectInterrupts direct = {});
  ~MachineVirtioFunction() override;  // Detach().

  uint32_t ConfigRead(uint16_t reg) override { return transport_->ConfigRead(reg); }
  void ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) override;
  absl::Status PlaceBars(
      const std::function<absl::StatusOr<uint64_t>(const pci::Bar&)>& allocate) override {
    return transport_->PlaceBars(allocate);
  }
  std::string Describe() override { return transport_->Describe(); }
  // Removes the trap, ioeventfds and routes, then detaches the transport (which resets the
  // device).
  void Detach() override;

  // Brings the direct queues' routes in line with their vectors (the BAR trap calls it after a
  // write that may have changed them).
  void SyncInterrupts() ABSL_LOCKS_EXCLUDED(lock_);

  virtio_pci::VirtioPciFunction& transport() { return *transport_; }
  // Where BAR 0 is trapped now; for tests.
  std::optional<uint64_t> trapped_at();
  // How many direct queues KVM delivers from their eventfd now; for tests.
  size_t direct_queues_bound();

 private:
  // A direct queue's route, once made.
  struct Routed {
    irq::MsiMessage programmed;  // As the guest wrote it (the route may carry it remapped).
    bool bound = false;          // The eventfd is the route's irqfd.
  };

  void Sync();
  void PlaceLocked(uint64_t address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void UnplaceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);

  Machine& machine_;
  Mutex& lock_;  // machine_.lock().
  const std::shared_ptr<virtio_pci::VirtioPciFunction> transport_;
  const std::vector<const EventFd*> notifiers_;
  const std::string id_;
  const DirectInterrupts direct_;
  std::vector<std::optional<Routed>> routed_ ABSL_GUARDED_BY(lock_);  // Per queue of direct_.
  RateLimitedLog guest_log_;
  // Where the trap is, and how many ioeventfds are registered there (the first ones).
  std::optional<uint64_t> placed_ ABSL_GUARDED_BY(lock_);
  size_t ioevents_ ABSL_GUARDED_BY(lock_) = 0;
  bool detached_ ABSL_GUARDED_BY(lock_) = false;
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VIRTIO_FUNCTION_H_
