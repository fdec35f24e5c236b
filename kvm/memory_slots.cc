#include "kvm/memory_slots.h"

#include "base/log.h"
#include "base/status_macros.h"

namespace vmmkit::kvm {

absl::Status KvmMemorySlots::RegionAdd(const AddressSpaceRegion& region) {
  // RAM and a device's mapped memory get slots; MMIO traps to userspace.
  if (region.kind == RegionKind::kMmio) return absl::OkStatus();
  ASSIGN_OR_RETURN(uint32_t slot, vm_->AddMemoryRegion(region.ram, flags_));
  slots_[region.start.raw()] = slot;
  return absl::OkStatus();
}

void KvmMemorySlots::RegionDel(const AddressSpaceRegion& region) {
  auto it = slots_.find(region.start.raw());
  if (it == slots_.end()) return;
  absl::Status s = vm_->RemoveMemoryRegion(it->second);
  // Nothing can veto a removal; a failure here means the kernel still maps the memory, and the Vm
  // keeps its reference to the region so the host pages stay valid.
  if (!s.ok()) LogError("kvm-slots: removing ", region.ToString(), ": ", s.message());
  slots_.erase(it);
}

std::optional<uint32_t> KvmMemorySlots::SlotFor(GuestAddress start) const {
  auto it = slots_.find(start.raw());
  if (it == slots_.end()) return std::nullopt;
  return it->second;
}

}  // namespace vmmkit::kvm
