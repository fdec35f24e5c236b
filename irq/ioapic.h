// File: irq/ioapic.h
// -----------------------------------------------------------------------------
// Ioapic: a userspace I/O APIC (82093AA register interface, version 0x20 with the EOI register),
// for a split irqchip (KVM_CAP_SPLIT_IRQCHIP: KVM keeps the local APICs, the VMM the IOAPIC).
// 24 pins, each with a redirection-table entry (RTE). An unmasked pin delivers the MSI its RTE
// describes through an IoapicSink: the VMM installs that message as a KVM route at GSI = pin
// (the route is what makes KVM report the guest's EOI of a level-triggered vector with
// KVM_EXIT_IOAPIC_EOI) and raises it.
//
// Inputs are levels: SetLevel(pin, true) asserts. Edge-triggered pins deliver on a rising edge (a
// rising edge while masked is latched and delivered at unmask, as on the chip); level-triggered
// pins deliver while asserted and remote IRR is clear, set remote IRR, and are delivered again
// after the guest's EOI of their vector if still asserted. An EOI also runs the pin's EOI handler
// (resampling: a passed-through device's INTx is re-armed there).
//
// RTEs in remappable format (bit 48, VT-d interrupt remapping) become remappable-format MSIs
// carrying the entry's interrupt index; the sink (the MSI route table's translator) remaps them.
//
//   Ioapic ioapic(sink);                           // IOAPIC id 0 at the chip's reset state
//   mmio.Insert(ioapic_device, 0xfec00000, Ioapic::kSize);
//   ioapic.SetLevel(4, true); ioapic.SetLevel(4, false);   // COM1's edge
//   ioapic.Eoi(vector);                            // on KVM_EXIT_IOAPIC_EOI
//
// Guest input is hostile: every register value is accepted and only the defined bits are kept;
// nothing a guest writes can make the model deliver a vector it did not program.
// Thread-safety: every method may be called from any thread (vCPUs for registers and EOIs, the
// interrupt thread for inputs). The sink is called with the Ioapic's lock held (so a route update
// and a delivery cannot cross), and must not call back into the Ioapic.

#ifndef VMMKIT_IRQ_IOAPIC_H_
#define VMMKIT_IRQ_IOAPIC_H_

#include <array>
#include <cstdint>
#include <functional>
#include <optional>

#include "absl/status/status.h"
#include "base/mutex.h"
#include "devices/bus.h"
#include "irq/msi.h"

namespace vmmkit::irq {

class IoapicSink {
 public:
  virtual ~IoapicSink() = default;
  // Pin `pin` now delivers `msg` (as composed from its unmasked RTE); nullopt removes the route
  // (the Ioapic itself never asks that: a masked pin keeps its route, for the EOI of what is in
  // service). A failed update (the message cannot be routed, e.g. a remapping entry the guest left
  // invalid) leaves the pin undeliverable until its RTE changes again or Reroute succeeds.
  virtual absl::Status SetRoute(uint32_t pin, std::optional<MsiMessage> msg) = 0;
  // Raises the pin's route once.
  virtual absl::Status Raise(uint32_t pin) = 0;
};

class Ioapic : public devices::BusDevice {
 public:
  static constexpr uint32_t kPins = 24;
  static constexpr uint64_t kSize = 0x100;  // IOREGSEL 0x00, IOWIN 0x10, EOI 0x40.
  static constexpr uint32_t kVersion = 0x20;

  struct Stats {
    uint64_t delivered = 0;
    uint64_t eois = 0;
    uint64_t route_errors = 0;
  };

  // `sink` must outlive the Ioapic.
  explicit Ioapic(IoapicSink& sink, uint8_t id = 0);

  // The register window (32-bit accesses; others read as all ones and are ignored on write).
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

  // An input's logical level (asserted or not; polarity is the RTE's business on real hardware,
  // and here the input is already "asserted"). Pins >= kPins are ignored.
  void SetLevel(uint32_t pin, bool asserted);
  // The guest EOIed `vector` (KVM_EXIT_IOAPIC_EOI, or the EOI register).
  void Eoi(uint8_t vector);
  // Offers every programmed pin's route to the sink again and delivers what became deliverable:
  // for when what a message means changed behind the entries (the guest's interrupt remapping
  // table was invalidated). Under the same lock as register writes.
  void Reroute();
  // Runs `handler` after every EOI that clears the pin's remote IRR (resampling), before a
  // still-asserted pin is delivered again. With the Ioapic's lock held: the handler may deassert
  // inputs only through its return value: returning false deasserts the pin.
  void SetEoiHandler(uint32_t pin, std::function<bool()> handler);

  uint64_t rte(uint32_t pin) const;
  Stats stats() const;

 private:
  struct Pin {
    uint64_t rte = kMasked;
    bool level = false;     // The input.
    bool pending = false;   // Edge latched while masked, or level asserted (the chip's IRR).
    bool routable = false;  // The sink accepted the current route.
    std::function<bool()> on_eoi;
  };
  static constexpr uint64_t kMasked = uint64_t{1} << 16;

  uint32_t ReadRegister(uint32_t index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteRegister(uint32_t index, uint32_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UpdateRoute(uint32_t pin) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Delivers the pin if it is pending, unmasked, routable and (level) remote IRR is clear.
  void Service(uint32_t pin) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EoiLocked(uint8_t vector) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  IoapicSink& sink_;
  mutable Mutex mu_;
  uint8_t id_ ABSL_GUARDED_BY(mu_);
  uint32_t select_ ABSL_GUARDED_BY(mu_) = 0;
  std::array<Pin, kPins> pins_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

// The MSI an RTE describes: compatibility format (destination bits 63:56, destination mode,
// vector, delivery mode, trigger mode), or, with bit 48 set, remappable format (interrupt index
// bits 63:49 and 11, subhandle not valid).
MsiMessage IoapicRteMessage(uint64_t rte);

}  // namespace vmmkit::irq

#endif  // VMMKIT_IRQ_IOAPIC_H_
