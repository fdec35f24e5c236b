// File: iommu/iommu.h
// -----------------------------------------------------------------------------
// The vIOMMU traits: what every guest IOMMU model implements (IommuModel: translate, walk) and
// what every consumer uses (IommuAddressSpace: translate through an IOTLB, notifiers, replay, and
// the invalidation helpers that turn a guest's invalidations into exactly the right MAP/UNMAP
// notifications).
//
// Caching mode. A guest that sees a caching-mode IOMMU (VT-d CM=1) must invalidate after making
// a translation present as well as after removing one, so the VMM learns of every change. The
// model calls InvalidateRange (page-selective), InvalidateAll (domain-selective; for a global
// invalidation, on each address space) or InvalidateContext (the device's tables changed
// wholesale). Each compares the guest's live translations (a Walk of the model) with what the
// notifiers were last told (tracked(), an IovaTree), and notifies only the difference: an UNMAP
// for exactly each tracked mapping that is gone or changed, a MAP for each new one. So several
// page invalidations of one page produce one UNMAP, and a domain invalidation misses nothing.
//
//   IommuAddressSpace as("edu", model);
//   RETURN_IF_ERROR(as.RegisterNotifier(&shadow, Iova(0), Iova(~0ull), kMapEvents | kUnmapEvents));
//   ... the guest writes its page table, then invalidates:
//   as.InvalidateRange(Iova(0x1000), 0x1000);   // -> shadow.Notify({MAP ...})
//   for (const IommuFault& f : as.TakeFaults()) model.ReportToGuest(f);
//
// A notifier registered for UNMAP events alone is a cache of translations (a device IOTLB, such
// as vhost's): it gets an UNMAP of each invalidated range itself (clamped to its registration),
// whether or not anything was tracked there, because it may have cached a translation the
// tracking never saw (without caching mode the guest does not invalidate after a map, and one
// mapping can come and go between two invalidations). Only MAP notifiers need tracked(): while
// none is registered an invalidation walks nothing, it flushes the IOTLB and tells the UNMAP-only
// notifiers, and tracked() is empty; the first MAP notifier's registration walks the tables.
//
// A notifier's failure (say the host IOMMU refused a map) never aborts anything: it is recorded
// as a fault for the model to show the guest.
// Thread-safety: none; one thread (the VMM's event loop) or the caller's lock.

#ifndef VMMKIT_IOMMU_IOMMU_H_
#define VMMKIT_IOMMU_IOMMU_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "iommu/iova_tree.h"
#include "iommu/types.h"

namespace vmmkit::iommu {

// A guest IOMMU model (VT-d, sPAPR TCE, ...): reads the guest's translation structures.
class IommuModel {
 public:
  virtual ~IommuModel() = default;
  // The translation of `iova` for `access`: NOT_FOUND if not present, PERMISSION_DENIED if the
  // access is not allowed. The entry is a naturally aligned page (addr_mask = size - 1).
  virtual absl::StatusOr<IotlbEntry> Translate(Iova iova, IommuAccess access) = 0;
  // Calls visit() for every present translation overlapping [start, last], in IOVA order.
  virtual void Walk(Iova start, Iova last, const std::function<void(const IotlbEntry&)>& visit) = 0;
};

enum class IommuEventType { kMap, kUnmap };
struct IommuEvent {
  IommuEventType type;
  // For kUnmap: the mapping that was there; to an UNMAP-only notifier, the invalidated range
  // (translated 0, perm kNone; the whole 64-bit space reads as size 2^64 - 1).
  IovaMapping mapping;
};
inline constexpr uint8_t kMapEvents = 1;
inline constexpr uint8_t kUnmapEvents = 2;

class IommuNotifier {
 public:
  virtual ~IommuNotifier() = default;
  // One batch per change: UNMAPs first, then MAPs, each in IOVA order. An error is recorded as a
  // fault; the notifier keeps whatever state it reached (it must tolerate an UNMAP of something it
  // did not map).
  virtual absl::Status Notify(absl::Span<const IommuEvent> events) = 0;
};

// A translation failure the guest should see (the model reports it in its fault registers).
struct IommuFault {
  Iova iova;
  uint64_t size = 0;
  std::string reason;
};

class IommuAddressSpace {
 public:
  IommuAddressSpace(std::string name, IommuModel& model) : name_(std::move(name)), model_(model) {}
  IommuAddressSpace(const IommuAddressSpace&) = delete;
  IommuAddressSpace& operator=(const IommuAddressSpace&) = delete;

  const std::string& name() const { return name_; }

  // Translate through the IOTLB (filled on a miss from the model, flushed by invalidations).
  absl::StatusOr<IotlbEntry> Translate(Iova iova, IommuAccess access);

  // Adds `notifier` for events in `events` overlapping [start, last] and, with `replay`, sends it
  // a MAP for each tracked mapping in that range (see the file comment for UNMAP-only ones).
  // ALREADY_EXISTS if it is registered already (a re-plugged device never gets two registrations).
  // If the replay fails, the notifier gets UNMAPs for what it accepted, is not registered, and the
  // error is returned.
  absl::Status RegisterNotifier(IommuNotifier* notifier, Iova start, Iova last, uint8_t events,
                                bool replay = true);
  // NOT_FOUND if not registered. Sends nothing: the owner tears down its own state.
  absl::Status UnregisterNotifier(IommuNotifier* notifier);
  size_t notifier_count() const { return notifiers_.size(); }
  // MAP events for every tracked mapping in the notifier's range.
  absl::Status Replay(IommuNotifier* notifier);

  // Invalidation helpers for models (see the file comment).
  void InvalidateRange(Iova iova, uint64_t size);
  void InvalidateAll();
  // UNMAP everything tracked, then MAP what the (new) tables hold.
  void InvalidateContext();

  // What the MAP notifiers were last told is mapped (empty while there is none).
  const IovaTree& tracked() const { return tracked_; }
  size_t map_notifier_count() const;
  // Faults recorded since the last call.
  std::vector<IommuFault> TakeFaults();

 private:
  struct Registration {
    IommuNotifier* notifier;
    Iova start, last;
    uint8_t events;
  };
  // Flushes the IOTLB over [first, last] and notifies what changed there (`forget`: everything
  // tracked is gone first, as when the device's tables change wholesale).
  void Sync(Iova first, Iova last, bool forget = false);
  // `unmaps` and `maps` to the MAP notifiers, [first, last] to the UNMAP-only ones.
  void Deliver(const std::vector<IommuEvent>& unmaps, const std::vector<IommuEvent>& maps,
               Iova first, Iova last);
  void FlushIotlb(Iova first, Iova last);

  std::string name_;
  IommuModel& model_;
  std::vector<Registration> notifiers_;
  IovaTree tracked_;
  absl::flat_hash_map<uint64_t, IotlbEntry> iotlb_;  // 4 KiB page number -> entry.
  std::vector<IommuFault> faults_;
};

// A global invalidation: every address space of the IOMMU.
void InvalidateGlobal(absl::Span<IommuAddressSpace* const> spaces);

}  // namespace vmmkit::iommu

#endif  // VMMKIT_IOMMU_IOMMU_H_
