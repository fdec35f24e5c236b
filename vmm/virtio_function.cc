#include "vmm/virtio_function.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::vmm {
namespace {

using virtio_pci::VirtioPciFunction;

// BAR 0 on the MMIO bus. A vCPU may have taken the trap from the bus just before the function
// was unplugged, so the trap holds the transport weakly: once it is gone, reads float high and
// writes vanish.
class BarTrap : public devices::BusDevice {
 public:
  explicit BarTrap(std::weak_ptr<VirtioPciFunction> transport) : transport_(std::move(transport)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    if (std::shared_ptr<VirtioPciFunction> t = transport_.lock()) {
      t->BarRead(offset, data);
    } else {
      std::memset(data.data(), 0xff, data.size());
    }
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    if (std::shared_ptr<VirtioPciFunction> t = transport_.lock()) t->BarWrite(offset, data);
  }

 private:
  const std::weak_ptr<VirtioPciFunction> transport_;
};

uint64_t NotifyAddress(uint64_t bar, size_t queue) {
  return bar + VirtioPciFunction::kNotifyOffset + queue * VirtioPciFunction::kNotifyMultiplier;
}

}  // namespace

MachineVirtioFunction::MachineVirtioFunction(Machine& machine,
                                             std::shared_ptr<VirtioPciFunction> transport,
                                             std::vector<const EventFd*> notifiers, std::string id)
    : machine_(machine),
      lock_(machine.lock()),
      transport_(std::move(transport)),
      notifiers_(std::move(notifiers)),
      id_(std::move(id)) {}

MachineVirtioFunction::~MachineVirtioFunction() { Detach(); }

void MachineVirtioFunction::ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) {
  transport_->ConfigWrite(reg, value, byte_mask);
  // Every write, not only BAR writes: the command register turns decoding on and off too. Sync
  // reads where the BAR decodes under the machine lock, so the last of two racing writers leaves
  // the machine as the configuration space ends up.
  Sync();
}

void MachineVirtioFunction::Sync() {
  MutexLock lock(lock_);
  if (detached_) return;
  const std::optional<uint64_t> at = transport_->bar_address();
  if (at == placed_) return;
  UnplaceLocked();
  if (at) PlaceLocked(*at);
}

void MachineVirtioFunction::PlaceLocked(uint64_t address) {
  if (absl::Status s = machine_.mmio().Insert(std::make_shared<BarTrap>(transport_), address,
                                              VirtioPciFunction::kBarSize);
      !s.ok()) {
    guest_log_.Warning(id_, ": BAR 0 at ", Hex(address), " not mapped: ", s.message());
    return;
  }
  placed_ = address;
  for (size_t q = 0; q < notifiers_.size(); ++q) {
    // Any width: Linux writes the queue index as 16 bits, others may not.
    absl::Status s = machine_.vm().RegisterIoevent(*notifiers_[q], kvm::IoBus::kMmio,
                                                   NotifyAddress(address, q), 0);
    if (!s.ok()) {
      // The notify write then exits to vmm, and the transport signals the same eventfd.
      LogWarning(id_, ": queue ", q, "'s notifications go through vmm: ", s.message());
      break;
    }
    ++ioevents_;
  }
}

void MachineVirtioFunction::UnplaceLocked() {
  if (!placed_) return;
  for (size_t q = 0; q < ioevents_; ++q) {
    (void)machine_.vm().UnregisterIoevent(*notifiers_[q], kvm::IoBus::kMmio,
                                          NotifyAddress(*placed_, q), 0);
  }
  ioevents_ = 0;
  (void)machine_.mmio().Remove(*placed_);
  placed_.reset();
}

void MachineVirtioFunction::Detach() {
  {
    MutexLock lock(lock_);
    if (detached_) return;
    detached_ = true;
    UnplaceLocked();
  }
  transport_->Detach();
}

std::optional<uint64_t> MachineVirtioFunction::trapped_at() {
  MutexLock lock(lock_);
  return placed_;
}

}  // namespace vmmkit::vmm
