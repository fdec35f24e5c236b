// File: memory/address_space.h
// -----------------------------------------------------------------------------
// An AddressSpace is a flat map of what a guest (or a device behind an IOMMU) can address: RAM
// regions, backed by host memory, and MMIO ranges, which trap to device models. MemoryListeners
// follow it: each sees RegionAdd / RegionDel for every region, which is how KVM memory slots and
// VFIO DMA mappings stay in sync with the guest's memory map (QEMU's MemoryListener idea).
//
// Ordering. Listeners run in ascending priority() on add and in descending priority() on delete
// (ties: registration order, reversed on delete). A pre-registration listener (priority
// kPreRegistration) therefore sees every region before a mapping listener does and after it is
// gone: sPAPR TCE v2 requires memory to be pre-registered before any DMA map touches it.
//
// Transactions. If a listener's RegionAdd fails, the listeners that already accepted the region get
// RegionDel (in reverse), the region is not added, and the error names the region and listener.
// RegisterListener replays every existing region to the new listener with the same rollback;
// UnregisterListener replays removals. Either way, no listener is left half-synchronized.
//
//   AddressSpace system("system");
//   RETURN_IF_ERROR(system.RegisterListener(&kvm_slots));
//   RETURN_IF_ERROR(system.AddRam("ram-low", low_ram));     // kvm_slots.RegionAdd(ram-low)
//   RETURN_IF_ERROR(system.AddMmio("ioapic", GuestAddress(0xfec00000), 0x1000));
//
// Thread-safety: none. All calls come from one thread (in vmm, the event loop) or under the
// caller's lock. Listener callbacks must not add or remove regions or listeners.

#ifndef VMMKIT_MEMORY_ADDRESS_SPACE_H_
#define VMMKIT_MEMORY_ADDRESS_SPACE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "memory/address.h"
#include "memory/guest_region.h"

namespace vmmkit {

enum class RegionKind {
  kRam,   // Host memory the guest accesses directly; DMA-mappable.
  kMmio,  // Emulated device memory: accesses trap; never DMA-mapped, never a KVM slot.
  // A host device's memory (a passed-through BAR, mmapped from VFIO) the guest accesses directly
  // through a KVM slot. Not RAM: never DMA-mapped (peer-to-peer DMA is not offered).
  kDeviceMemory,
};

const char* RegionKindName(RegionKind kind);

// One region of an AddressSpace, as listeners see it.
struct AddressSpaceRegion {
  std::string name;
  GuestAddress start;
  uint64_t size = 0;
  RegionKind kind = RegionKind::kMmio;
  // kRam and kDeviceMemory: the backing region; the whole of it appears at `start`. Listeners that
  // map it elsewhere copy this shared_ptr to keep the host memory alive for as long as they need
  // it.
  std::shared_ptr<GuestRegion> ram;

  GuestAddress last() const { return GuestAddress(start.raw() + (size - 1)); }
  // Host address of `start` for RAM; null for MMIO.
  uint8_t* host_address() const { return ram ? ram->host_address() : nullptr; }
  std::string ToString() const;  // e.g. "ram-low [0x0, 0x7fffffff] RAM"
};

class MemoryListener {
 public:
  // Lower priorities run first on add and last on delete.
  static constexpr int kPreRegistration = -100;
  static constexpr int kDefault = 0;

  virtual ~MemoryListener() = default;
  virtual int priority() const { return kDefault; }
  // For error messages ("listener vfio-map: ...").
  virtual std::string name() const { return "listener"; }
  // A region appeared. An error vetoes the addition (or the registration, during replay).
  virtual absl::Status RegionAdd(const AddressSpaceRegion& region) = 0;
  // A region that this listener accepted is going away. Cannot veto; clean up and log.
  virtual void RegionDel(const AddressSpaceRegion& region) = 0;
};

class AddressSpace {
 public:
  explicit AddressSpace(std::string name) : name_(std::move(name)) {}
  AddressSpace(const AddressSpace&) = delete;
  AddressSpace& operator=(const AddressSpace&) = delete;
  // Does not notify listeners: unregister them first if they must undo their work.
  ~AddressSpace() = default;

  const std::string& name() const { return name_; }

  // Adds `ram` at ram->start(). ALREADY_EXISTS if it overlaps an existing region.
  absl::Status AddRam(std::string name, std::shared_ptr<GuestRegion> ram);
  // Adds a host device's mapped memory at memory->start() (kDeviceMemory).
  absl::Status AddDeviceMemory(std::string name, std::shared_ptr<GuestRegion> memory);
  // Adds an MMIO range [start, start + size). INVALID_ARGUMENT for size 0 or a range past 2^64.
  absl::Status AddMmio(std::string name, GuestAddress start, uint64_t size);
  // Removes the region that starts at `start`; NOT_FOUND if there is none.
  absl::Status Remove(GuestAddress start);

  // Adds `listener` (not owned; it must outlive its registration) and replays existing regions.
  absl::Status RegisterListener(MemoryListener* listener);
  // Replays removal of every region to `listener`, then forgets it. NOT_FOUND if not registered.
  absl::Status UnregisterListener(MemoryListener* listener);
  // Forgets `listener` without telling it, and returns the regions it has been told about, in
  // address order: the caller replays them to it (RegionDel, in reverse) where it likes. For
  // listeners whose removals are slow (a DMA unmap of all guest RAM) while the space is shared
  // under a lock: the replay can then run outside it. NOT_FOUND if not registered.
  absl::StatusOr<std::vector<AddressSpaceRegion>> RemoveListener(MemoryListener* listener);

  // The region containing `addr`, or null. The pointer is valid until the next Add/Remove.
  const AddressSpaceRegion* Find(GuestAddress addr) const;
  // A snapshot of all regions in address order.
  std::vector<AddressSpaceRegion> regions() const;
  size_t listener_count() const { return listeners_.size(); }

 private:
  absl::Status Add(AddressSpaceRegion region);
  // Listeners in add order (stable by priority); delete order is the reverse.
  std::vector<MemoryListener*> listeners_;
  std::string name_;
  std::map<uint64_t, AddressSpaceRegion> regions_;  // Keyed by start.
};

}  // namespace vmmkit

#endif  // VMMKIT_MEMORY_ADDRESS_SPACE_H_
