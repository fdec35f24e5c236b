// File: vmm/virtio_function.h
// -----------------------------------------------------------------------------
// MachineVirtioFunction puts a virtio_pci::VirtioPciFunction on the machine: it is the PciFunction
// the device manager plugs into a slot, and after every configuration write it makes the machine
// agree with where BAR 0 decodes now: a trap on the MMIO bus for the whole BAR, and a KVM
// ioeventfd on each queue's notify address bound to that queue's notifier eventfd. A guest that
// moves the BAR or turns memory decoding off moves or removes both; one that puts the BAR over
// another device gets neither (logged), as if it decoded nowhere.
//
//   auto fn = std::make_shared<MachineVirtioFunction>(machine, transport, notifiers, "disk0");
//   device_manager places its BARs and adds it to the root bus.
//
// Thread-safety: configuration writes from any vCPU thread. The trap and ioeventfds change under
// the machine lock, which is taken after the transport's lock is released (lock order: the
// machine's, then the transport's, which Sync takes for the BAR's address).

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
#include "pci/function.h"
#include "virtio_pci/transport.h"
#include "vmm/machine.h"

namespace vmmkit::vmm {

class MachineVirtioFunction : public pci::PciFunction {
 public:
  // `notifiers[i]` wakes queue i (the device's); they must outlive the function.
  MachineVirtioFunction(Machine& machine, std::shared_ptr<virtio_pci::VirtioPciFunction> transport,
                        std::vector<const EventFd*> notifiers, std::string id);
  ~MachineVirtioFunction() override;  // Detach().

  uint32_t ConfigRead(uint16_t reg) override { return transport_->ConfigRead(reg); }
  void ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) override;
  absl::Status PlaceBars(
      const std::function<absl::StatusOr<uint64_t>(const pci::Bar&)>& allocate) override {
    return transport_->PlaceBars(allocate);
  }
  std::string Describe() override { return transport_->Describe(); }
  // Removes the trap and ioeventfds, then detaches the transport (which resets the device).
  void Detach() override;

  virtio_pci::VirtioPciFunction& transport() { return *transport_; }
  // Where BAR 0 is trapped now; for tests.
  std::optional<uint64_t> trapped_at();

 private:
  void Sync();
  void PlaceLocked(uint64_t address) ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);
  void UnplaceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lock_);

  Machine& machine_;
  Mutex& lock_;  // machine_.lock().
  const std::shared_ptr<virtio_pci::VirtioPciFunction> transport_;
  const std::vector<const EventFd*> notifiers_;
  const std::string id_;
  RateLimitedLog guest_log_;
  // Where the trap is, and how many ioeventfds are registered there (the first ones).
  std::optional<uint64_t> placed_ ABSL_GUARDED_BY(lock_);
  size_t ioevents_ ABSL_GUARDED_BY(lock_) = 0;
  bool detached_ ABSL_GUARDED_BY(lock_) = false;
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VIRTIO_FUNCTION_H_
