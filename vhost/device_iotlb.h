// File: vhost/device_iotlb.h
// -----------------------------------------------------------------------------
// DeviceIotlb serves the IOTLB of vhost devices whose driver negotiated ACCESS_PLATFORM, from a
// guest-visible IOMMU. The kernel then reaches the rings and buffers by I/O virtual address: it
// asks about an address it has no entry for (a MISS message on the device's fd; the ring waits),
// and DeviceIotlb answers with the IOMMU's translation of the whole page (an UPDATE: the IOVA
// range, vmm's address of the guest RAM behind it, the page's permission). Whatever the IOMMU
// unmaps for the device (the VMM calls Unmap from the IOMMU's notifications: with a VT-d unit in
// caching mode every page, domain or global invalidation arrives as exact unmaps) it takes back
// from every device it serves (INVALIDATE), before the guest's invalidation completes. A
// translation that fails is the IOMMU's fault (recorded there, as for any DMA) and the device's
// error: its ring cannot go on. The IOMMU is reached only through the Translate function, so this
// library needs none.
//
// An answer must never outlive the mapping it came from: a guest that unmaps between the
// translation and the UPDATE would leave the kernel a stale entry. UNMAPs bump a generation under
// mu_ (and send their INVALIDATEs under it); an answer is written under mu_ only if no UNMAP came
// since its translation began, else it is translated again.
//
//   auto iotlb = std::make_unique<vhost::DeviceIotlb>(translate, guest_memory);
//   iotlb->Add(&vhost_net);              // before the IOMMU's unmaps are forwarded to Unmap
//   RETURN_IF_ERROR(vhost_net.SetFeatures(negotiated));       // with ACCESS_PLATFORM
//   RETURN_IF_ERROR(iotlb->Start(vhost_net, /*platform=*/true));
//   ... StartVring(vhost_net, nullptr, ...); iotlb->Map(vhost_net, used_ring, kWrite); SetBackend
//   on POLLIN of vhost_net.fd(): RETURN_IF_ERROR(iotlb->Serve(vhost_net));
//
// Thread-safety: Map, Serve, Start and Stop from each device's own thread; Unmap from whoever
// drives the IOMMU (under its lock: mu_ is a leaf below it; `translate` is never called under mu_).

#ifndef VMMKIT_VHOST_DEVICE_IOTLB_H_
#define VMMKIT_VHOST_DEVICE_IOTLB_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/log.h"
#include "base/mutex.h"
#include "memory/guest_memory.h"
#include "vhost/vhost.h"

namespace vmmkit::vhost {

// What the IOMMU maps at an address: [iova, iova + size) (a page, aligned to its size) onto
// guest-physical [gpa, gpa + size), with `perm` (IotlbMessage::Perm bits).
struct IommuPage {
  uint64_t iova = 0, size = 0, gpa = 0;
  uint8_t perm = 0;
};

class DeviceIotlb {
 public:
  // The device's view through the IOMMU: the page covering `iova` if it allows `access`
  // (IotlbMessage::kRead or kWrite); an error is the IOMMU's fault.
  using Translate = std::function<absl::StatusOr<IommuPage>(uint64_t iova, uint8_t access)>;
  struct Stats {
    uint64_t misses = 0, updates = 0, invalidations = 0, faults = 0;
  };

  // `memory` (guest RAM, which outlives this) is where translations must land.
  DeviceIotlb(Translate translate, const GuestMemory& memory);

  // A device this serves (it must outlive this, or be gone after the notifier is unregistered).
  void Add(const VhostDevice* device) ABSL_LOCKS_EXCLUDED(mu_);
  // At activation, after SetFeatures: drops the misses of an earlier life. With `platform` (the
  // driver negotiated ACCESS_PLATFORM, SetFeatures had it: a fresh, empty IOTLB) UNMAPs reach the
  // device from now on. Without, a device whose IOTLB an earlier life turned on (the kernel
  // cannot turn it off) gets guest RAM one-to-one instead.
  absl::Status Start(const VhostDevice& device, bool platform) ABSL_LOCKS_EXCLUDED(mu_);
  // Answers for `iova` before the kernel asks (the used ring, which the kernel touches when a ring
  // starts).
  absl::Status Map(const VhostDevice& device, uint64_t iova, uint8_t access)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Answers every miss the device has queued. An error (a translation that failed, a message the
  // kernel refused) means its rings cannot go on.
  absl::Status Serve(const VhostDevice& device) ABSL_LOCKS_EXCLUDED(mu_);
  // At reset: UNMAPs stop going to the device.
  void Stop(const VhostDevice& device) ABSL_LOCKS_EXCLUDED(mu_);

  // The IOMMU took [iova, iova + size) away: an INVALIDATE to every device translating now.
  // (Mappings are not pushed: the kernel asks.)
  void Unmap(uint64_t iova, uint64_t size) ABSL_LOCKS_EXCLUDED(mu_);

  Stats stats() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Served {
    const VhostDevice* device;
    bool platform = false;  // Its addresses are IOVAs now: UNMAPs go to it.
    bool iotlb_on = false;  // SetFeatures turned its IOTLB on once.
  };
  Served* Find(const VhostDevice& device) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Translate translate_;
  const GuestMemory& memory_;
  mutable Mutex mu_;
  std::vector<Served> devices_ ABSL_GUARDED_BY(mu_);
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;  // Bumped by every UNMAP.
  Stats stats_ ABSL_GUARDED_BY(mu_);
  RateLimitedLog log_;
};

}  // namespace vmmkit::vhost

#endif  // VMMKIT_VHOST_DEVICE_IOTLB_H_
