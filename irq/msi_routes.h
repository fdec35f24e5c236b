// File: irq/msi_routes.h
// -----------------------------------------------------------------------------
// MsiRoutes turns the MSI/MSI-X messages a guest programs into a passthrough device into KVM
// interrupt routes: each enabled vector gets a GSI routed to its (remapped, if need be) message,
// and the eventfd VFIO signals for that vector is bound to the GSI as an irqfd, so an interrupt
// goes from the device to the guest without the VMM running.
//
// KVM_SET_GSI_ROUTING replaces the whole table, so this class owns it: `base` (the irqchip pin
// routes) plus one route per vector, pushed whole on every change. Masking a vector detaches its
// irqfd (VFIO's eventfd then just counts, and the VMM can set the pending bit); unmasking attaches
// it again. With an MsiTranslator (the IOMMU's interrupt remapping: iommu/msi_remapper.h,
// iommu/vtd/unit.h) every message goes through it first, in either format (a guest that enabled
// remapping may block the compatibility format); a message it rejects is an error, never a route.
// Without one, compatibility-format messages are delivered as they are and remappable ones are
// refused. GSIs come from the range given, lowest free first (GsiAllocator).
//
//   MsiRoutes routes(vm, /*first_gsi=*/24, /*count=*/1000, kvm::DefaultIrqchipRoutes());
//   ASSIGN_OR_RETURN(uint32_t gsi, routes.Enable({dev, 0}, msg, source_id, vfio_eventfd));
//   RETURN_IF_ERROR(device->EnableIrqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, {vfio_eventfd.fd()}));
//
// Every call is all-or-nothing: on failure the routing table and irqfds are as before.
// Thread-safety: none; the event loop (or the caller's lock) owns it.

#ifndef VMMKIT_IRQ_MSI_ROUTES_H_
#define VMMKIT_IRQ_MSI_ROUTES_H_

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/event_fd.h"
#include "irq/gsi_allocator.h"
#include "irq/msi.h"
#include "kvm/vm.h"

namespace vmmkit::irq {

// A vector of a device: the caller's device number and the vector index.
struct MsiVector {
  uint32_t device = 0;
  uint32_t vector = 0;
  friend auto operator<=>(const MsiVector&, const MsiVector&) = default;
};

class MsiRoutes {
 public:
  // MSI routes use GSIs [first_gsi, first_gsi + count); `base` is the rest of the table.
  // `translator` (optional, not owned) translates remappable-format messages.
  MsiRoutes(kvm::Vm& vm, uint32_t first_gsi, uint32_t count, std::vector<kvm::GsiRoute> base,
            MsiTranslator* translator = nullptr);

  // Routes `msg` from requester `source_id` to a free GSI and, unless `masked`, binds `trigger`
  // to it. `trigger` must stay alive until Disable. ALREADY_EXISTS if the vector is enabled;
  // RESOURCE_EXHAUSTED when the GSI range is full.
  absl::StatusOr<uint32_t> Enable(MsiVector v, const MsiMessage& msg, uint16_t source_id,
                                  const EventFd& trigger, bool masked = false);
  // The guest reprogrammed the vector's address/data.
  absl::Status Update(MsiVector v, const MsiMessage& msg);
  absl::Status Mask(MsiVector v);
  absl::Status Unmask(MsiVector v);
  // Unbinds and removes the route; the GSI is free again.
  absl::Status Disable(MsiVector v);
  // Disable() for every vector of `device`, with one table update instead of one per vector (each
  // makes KVM wait out a grace period): for a device with many vectors, as when a guest disables
  // MSI-X or a device is unplugged. BM_MsiTeardown under the lab's KVM: 2.0-3.2x at 8-32 vectors.
  absl::Status DisableDevice(uint32_t device);

  // The route at a fixed GSI below the MSI range, for an input of a userspace interrupt controller
  // (a split irqchip's IOAPIC pin): `msg` from `source_id`, or none to remove it. No irqfd: the
  // controller raises it (KVM_IRQ_LINE). INVALID_ARGUMENT for a GSI in the MSI range or in `base`.
  // A message the translator rejects leaves the GSI without a route (the error says why).
  absl::Status SetPinRoute(uint32_t gsi, std::optional<MsiMessage> msg, uint16_t source_id);
  // Translates every route's message again (the guest changed its interrupt remapping table and
  // invalidated the IOMMU's interrupt entry cache): a route whose message is now rejected is
  // blocked (taken out of KVM's table, its irqfd left bound to nothing) until a later translation
  // succeeds. One table update, and none if nothing changed.
  absl::Status Retranslate();

  size_t size() const { return routes_.size(); }
  std::optional<uint32_t> gsi(MsiVector v) const;
  // The message KVM delivers for `v` (after remapping).
  std::optional<MsiMessage> delivered(MsiVector v) const;

 private:
  struct Route {
    uint32_t gsi;
    MsiMessage msg;  // As delivered (remapped).
    uint16_t source_id;
    const EventFd* trigger;
    bool masked;
    MsiMessage programmed;  // As the guest wrote it.
    bool blocked = false;   // The last retranslation rejected it: not in KVM's table.
  };
  struct PinRoute {
    MsiMessage programmed;
    uint16_t source_id;
    std::optional<MsiMessage> delivered;  // None: rejected, no route.
  };
  absl::StatusOr<MsiMessage> Resolve(const MsiMessage& msg, uint16_t source_id) const;
  absl::Status Push();
  absl::StatusOr<Route*> Find(MsiVector v, const char* op);

  kvm::Vm& vm_;
  GsiAllocator gsis_;
  std::vector<kvm::GsiRoute> base_;
  MsiTranslator* translator_;
  std::map<MsiVector, Route> routes_;
  std::map<uint32_t, PinRoute> pin_routes_;
};

}  // namespace vmmkit::irq

#endif  // VMMKIT_IRQ_MSI_ROUTES_H_
