#include "vmm/virtio_function.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::vmm {
namespace {

using virtio_pci::VirtioPciFunction;

// BAR 0 on the MMIO bus. A vCPU may have taken the trap from the bus just before the function
// was unplugged, so the trap holds the transport and the function weakly: once they are gone,
// reads float high and writes vanish.
class BarTrap : public devices::BusDevice {
 public:
  BarTrap(std::weak_ptr<VirtioPciFunction> transport, std::weak_ptr<MachineVirtioFunction> owner,
          bool direct)
      : transport_(std::move(transport)), owner_(std::move(owner)), direct_(direct) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override {
    if (std::shared_ptr<VirtioPciFunction> t = transport_.lock()) {
      t->BarRead(offset, data);
    } else {
      std::memset(data.data(), 0xff, data.size());
    }
  }
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override {
    std::shared_ptr<VirtioPciFunction> t = transport_.lock();
    if (!t) return;
    t->BarWrite(offset, data);
    // The common configuration (a queue's vector, the device status) and the MSI-X table are
    // where a queue's interrupt changes; the notify writes that make up the traffic are not.
    const bool common = offset < VirtioPciFunction::kCommonOffset + VirtioPciFunction::kCommonSize;
    const bool table =
        offset >= VirtioPciFunction::kMsixTableOffset && offset < VirtioPciFunction::kMsixPbaOffset;
    if (direct_ && (common || table)) {
      if (std::shared_ptr<MachineVirtioFunction> o = owner_.lock()) o->SyncInterrupts();
    }
  }

 private:
  const std::weak_ptr<VirtioPciFunction> transport_;
  const std::weak_ptr<MachineVirtioFunction> owner_;
  const bool direct_;
};

uint64_t NotifyAddress(uint64_t bar, size_t queue) {
  return bar + VirtioPciFunction::kNotifyOffset + queue * VirtioPciFunction::kNotifyMultiplier;
}

}  // namespace

MachineVirtioFunction::MachineVirtioFunction(Machine& machine,
                                             std::shared_ptr<VirtioPciFunction> transport,
                                             std::vector<const EventFd*> notifiers, std::string id,
                                             DirectInterrupts direct)
    : machine_(machine),
      lock_(machine.lock()),
      transport_(std::move(transport)),
      notifiers_(std::move(notifiers)),
      id_(std::move(id)),
      direct_(std::move(direct)),
      routed_(direct_.fds.size()) {}

MachineVirtioFunction::~MachineVirtioFunction() { Detach(); }

void MachineVirtioFunction::ConfigWrite(uint16_t reg, uint32_t value, uint8_t byte_mask) {
  transport_->ConfigWrite(reg, value, byte_mask);
  // Every write, not only BAR writes: the command register turns decoding on and off too. Sync
  // reads where the BAR decodes under the machine lock, so the last of two racing writers leaves
  // the machine as the configuration space ends up. The same for the routes (MSI-X enable and the
  // function mask are here; so is the window onto BAR 0).
  Sync();
  SyncInterrupts();
}

void MachineVirtioFunction::SyncInterrupts() {
  if (direct_.fds.empty()) return;
  MutexLock lock(lock_);
  if (detached_) return;
  const std::vector<VirtioPciFunction::QueueInterrupt> want = transport_->QueueInterrupts();
  irq::MsiRoutes& routes = machine_.msi_routes();
  bool any_routable = false, any_routed = false;
  for (size_t q = 0; q < direct_.fds.size() && q < want.size(); ++q) {
    if (direct_.fds[q] == nullptr) continue;
    any_routable |= want[q].routable;
    any_routed |= routed_[q].has_value();
  }
  if (!any_routable) {
    // A reset, MSI-X turned off: every route goes, in one table update.
    if (any_routed) {
      if (absl::Status s = routes.DisableDevice(direct_.device_number); !s.ok()) {
        guest_log_.Warning(id_, ": removing its queues' interrupt routes: ", s.message());
        return;
      }
      for (std::optional<Routed>& r : routed_) r.reset();
    }
    return;
  }
  for (size_t q = 0; q < direct_.fds.size() && q < want.size(); ++q) {
    if (direct_.fds[q] == nullptr) continue;
    const irq::MsiVector key{direct_.device_number, static_cast<uint32_t>(q)};
    const irq::MsiMessage msg{.address = want[q].address, .data = want[q].data};
    std::optional<Routed>& r = routed_[q];
    absl::Status s;
    if (!want[q].routable || want[q].masked) {
      // The device relays it; the transport keeps the pending bit. A message rewritten while
      // masked (as Linux programs entries) costs nothing until the unmask.
      if (r && r->bound) {
        s = routes.Mask(key);
        if (s.ok()) r->bound = false;
      }
    } else {
      if (!r) {
        s = routes.Enable(key, msg, direct_.requester_id, *direct_.fds[q], /*masked=*/true)
                .status();
        if (s.ok()) r = Routed{.programmed = msg};
      } else if (r->programmed != msg) {
        s = routes.Update(key, msg);
        if (s.ok()) {
          r->programmed = msg;
        } else if (r->bound && routes.Mask(key).ok()) {
          r->bound = false;  // Never the stale message: the relay delivers (and faults) instead.
        }
      }
      if (s.ok() && r && !r->bound) {
        s = routes.Unmask(key);
        if (s.ok()) r->bound = true;
      }
    }
    if (!s.ok()) {
      guest_log_.Warning(id_, ": queue ", q, "'s interrupts go through vmm: ", s.message());
    }
  }
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
  if (absl::Status s = machine_.mmio().Insert(
          std::make_shared<BarTrap>(transport_, weak_from_this(), !direct_.fds.empty()), address,
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
    bool routed = false;
    for (const std::optional<Routed>& r : routed_) routed |= r.has_value();
    // Before the device (and its eventfds) can go.
    if (routed) (void)machine_.msi_routes().DisableDevice(direct_.device_number);
    for (std::optional<Routed>& r : routed_) r.reset();
  }
  transport_->Detach();
}

size_t MachineVirtioFunction::direct_queues_bound() {
  MutexLock lock(lock_);
  size_t n = 0;
  for (const std::optional<Routed>& r : routed_) n += r && r->bound;
  return n;
}

std::optional<uint64_t> MachineVirtioFunction::trapped_at() {
  MutexLock lock(lock_);
  return placed_;
}

}  // namespace vmmkit::vmm
