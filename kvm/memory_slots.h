// File: kvm/memory_slots.h
// -----------------------------------------------------------------------------
// KvmMemorySlots is a MemoryListener that keeps a Vm's memory slots in sync with a memory/
// AddressSpace: every RAM region becomes a slot when added and is unmapped when removed. MMIO
// regions get no slot, so guest accesses to them exit to userspace as MMIO.
//
//   KvmMemorySlots slots(vm.get());
//   RETURN_IF_ERROR(system_memory.RegisterListener(&slots));  // maps the RAM already there
//   RETURN_IF_ERROR(system_memory.AddRam("ram-high", high));   // becomes a slot too
//
// Thread-safety: as AddressSpace (callbacks arrive on the thread that changes the space).

#ifndef VMMKIT_KVM_MEMORY_SLOTS_H_
#define VMMKIT_KVM_MEMORY_SLOTS_H_

#include <cstdint>
#include <map>
#include <string>

#include "kvm/vm.h"
#include "memory/address_space.h"

namespace vmmkit::kvm {

class KvmMemorySlots : public MemoryListener {
 public:
  // `vm` must outlive this listener's registration.
  explicit KvmMemorySlots(Vm* vm, MemorySlotFlags flags = {}) : vm_(vm), flags_(flags) {}

  std::string name() const override { return "kvm-slots"; }
  absl::Status RegionAdd(const AddressSpaceRegion& region) override;
  void RegionDel(const AddressSpaceRegion& region) override;

  // The slot mapping the region that starts at `start`, if any.
  std::optional<uint32_t> SlotFor(GuestAddress start) const;

 private:
  Vm* vm_;
  MemorySlotFlags flags_;
  std::map<uint64_t, uint32_t> slots_;  // Region start -> slot.
};

}  // namespace vmmkit::kvm

#endif  // VMMKIT_KVM_MEMORY_SLOTS_H_
