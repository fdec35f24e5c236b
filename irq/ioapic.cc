#include "irq/ioapic.h"

#include <cstring>

namespace vmmkit::irq {
namespace {

constexpr uint64_t kRegSelect = 0x00, kRegWindow = 0x10, kRegEoi = 0x40;
constexpr uint32_t kIndexId = 0x00, kIndexVersion = 0x01, kIndexArbitration = 0x02,
                   kIndexFirstRte = 0x10;

constexpr uint64_t kVectorMask = 0xff;
constexpr uint64_t kDeliveryStatus = uint64_t{1} << 12;
constexpr uint64_t kRemoteIrr = uint64_t{1} << 14;
constexpr uint64_t kLevelTriggered = uint64_t{1} << 15;
constexpr uint64_t kMask = uint64_t{1} << 16;
constexpr uint64_t kRemappable = uint64_t{1} << 48;
// Bits the guest cannot set: delivery status and remote IRR are the chip's.
constexpr uint64_t kReadOnly = kDeliveryStatus | kRemoteIrr;

bool Level(uint64_t rte) { return (rte & kLevelTriggered) != 0; }
bool Masked(uint64_t rte) { return (rte & kMask) != 0; }
uint8_t Vector(uint64_t rte) { return static_cast<uint8_t>(rte & kVectorMask); }

}  // namespace

MsiMessage IoapicRteMessage(uint64_t rte) {
  const uint32_t trigger_and_vector = static_cast<uint32_t>(rte & (kLevelTriggered | kVectorMask));
  if (rte & kRemappable) {
    // VT-d 5.1.5.1: index[14:0] in bits 63:49, index[15] in bit 11; the message carries the
    // handle (address bits 19:5 and 2) with the interrupt-format bit and SHV clear.
    const uint32_t index = static_cast<uint32_t>((rte >> 49) & 0x7fff) |
                           (static_cast<uint32_t>((rte >> 11) & 1) << 15);
    return MsiMessage{
        .address = 0xfee00000u | ((index & 0x7fff) << 5) | (1u << 4) | ((index >> 15) << 2),
        .data = trigger_and_vector};
  }
  const uint64_t destination = (rte >> 56) & 0xff;
  const uint64_t logical = (rte >> 11) & 1;
  const uint32_t delivery_mode = static_cast<uint32_t>((rte >> 8) & 7);
  return MsiMessage{.address = 0xfee00000u | (destination << 12) | (logical << 2),
                    .data = trigger_and_vector | (delivery_mode << 8)};
}

Ioapic::Ioapic(IoapicSink& sink, uint8_t id) : sink_(sink), id_(id & 0xf) {}

void Ioapic::Read(uint64_t offset, absl::Span<uint8_t> data) {
  uint32_t value = ~0u;
  if (data.size() == 4) {
    MutexLock lock(mu_);
    if (offset == kRegSelect) value = select_;
    if (offset == kRegWindow) value = ReadRegister(select_);
  }
  std::memcpy(data.data(), &value, data.size() < 4 ? data.size() : 4);
  if (data.size() > 4) std::memset(data.data() + 4, 0xff, data.size() - 4);
}

void Ioapic::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (data.size() != 4) return;
  uint32_t value;
  std::memcpy(&value, data.data(), 4);
  MutexLock lock(mu_);
  if (offset == kRegSelect) select_ = value & 0xff;
  if (offset == kRegWindow) WriteRegister(select_, value);
  if (offset == kRegEoi) EoiLocked(static_cast<uint8_t>(value));
}

uint32_t Ioapic::ReadRegister(uint32_t index) const {
  switch (index) {
    case kIndexId:
    case kIndexArbitration:
      return static_cast<uint32_t>(id_) << 24;
    case kIndexVersion:
      return kVersion | ((kPins - 1) << 16);
  }
  if (index >= kIndexFirstRte && index < kIndexFirstRte + 2 * kPins) {
    const uint64_t rte = pins_[(index - kIndexFirstRte) / 2].rte;
    return static_cast<uint32_t>((index & 1) ? rte >> 32 : rte);
  }
  return ~0u;
}

void Ioapic::WriteRegister(uint32_t index, uint32_t value) {
  if (index == kIndexId) {
    id_ = static_cast<uint8_t>((value >> 24) & 0xf);
    return;
  }
  if (index < kIndexFirstRte || index >= kIndexFirstRte + 2 * kPins) return;
  const uint32_t n = (index - kIndexFirstRte) / 2;
  Pin& pin = pins_[n];
  const uint64_t old = pin.rte;
  uint64_t rte = (index & 1) ? (old & 0xffffffffu) | (uint64_t{value} << 32)
                             : (old & ~uint64_t{0xffffffffu}) | value;
  rte = (rte & ~kReadOnly) | (old & kReadOnly);
  // Remote IRR means nothing for an edge-triggered pin: switching to edge drops it.
  if (!Level(rte)) rte &= ~kRemoteIrr;
  pin.rte = rte;
  if (rte == old) return;
  UpdateRoute(n);
  Service(n);
}

void Ioapic::UpdateRoute(uint32_t n) {
  Pin& pin = pins_[n];
  // A masked pin keeps the route it had (as QEMU's IOAPIC does): the guest may mask a
  // level-triggered pin while its interrupt is in service, and the route is what makes KVM report
  // that interrupt's EOI. Nothing raises it while masked, and a masked entry, which the guest may
  // leave half-written, is not translated.
  if (Masked(pin.rte)) return;
  absl::Status s = sink_.SetRoute(n, IoapicRteMessage(pin.rte));
  pin.routable = s.ok();
  if (!s.ok()) ++stats_.route_errors;
}

void Ioapic::Service(uint32_t n) {
  Pin& pin = pins_[n];
  if (!pin.pending || Masked(pin.rte) || !pin.routable) return;
  if (Level(pin.rte)) {
    if (pin.rte & kRemoteIrr) return;
    pin.rte |= kRemoteIrr;
  } else {
    pin.pending = false;  // An edge is delivered once.
  }
  if (sink_.Raise(n).ok()) {
    ++stats_.delivered;
  } else {
    ++stats_.route_errors;
    pin.rte &= ~kRemoteIrr;  // Nothing reached a CPU: no EOI will come.
  }
}

void Ioapic::SetLevel(uint32_t n, bool asserted) {
  if (n >= kPins) return;
  MutexLock lock(mu_);
  Pin& pin = pins_[n];
  const bool rising = asserted && !pin.level;
  pin.level = asserted;
  if (Level(pin.rte)) {
    pin.pending = asserted;
  } else if (rising) {
    pin.pending = true;
  }
  Service(n);
}

void Ioapic::Eoi(uint8_t vector) {
  MutexLock lock(mu_);
  EoiLocked(vector);
}

void Ioapic::EoiLocked(uint8_t vector) {
  ++stats_.eois;
  for (uint32_t n = 0; n < kPins; ++n) {
    Pin& pin = pins_[n];
    if (!Level(pin.rte) || !(pin.rte & kRemoteIrr) || Vector(pin.rte) != vector) continue;
    pin.rte &= ~kRemoteIrr;
    if (pin.on_eoi && !pin.on_eoi()) {
      pin.level = false;
      pin.pending = false;
    }
    Service(n);
  }
}

void Ioapic::Reroute() {
  MutexLock lock(mu_);
  for (uint32_t n = 0; n < kPins; ++n) {
    if (pins_[n].rte == kMasked) continue;  // Never programmed (or back at its reset value).
    UpdateRoute(n);
    Service(n);
  }
}

void Ioapic::SetEoiHandler(uint32_t n, std::function<bool()> handler) {
  if (n >= kPins) return;
  MutexLock lock(mu_);
  pins_[n].on_eoi = std::move(handler);
}

uint64_t Ioapic::rte(uint32_t n) const {
  MutexLock lock(mu_);
  return n < kPins ? pins_[n].rte : 0;
}

Ioapic::Stats Ioapic::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

}  // namespace vmmkit::irq
