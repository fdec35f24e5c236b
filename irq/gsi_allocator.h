// File: irq/gsi_allocator.h
// -----------------------------------------------------------------------------
// GsiAllocator hands out KVM GSI numbers from a range: the lowest free one first, so that a
// freed GSI is reused before the table grows. The irqchip's own pins (0-23 on a PC) stay outside
// any range a VMM gives it.
//
//   GsiAllocator msi(/*first=*/24, /*count=*/1000);
//   ASSIGN_OR_RETURN(uint32_t gsi, msi.Allocate());
//   msi.Free(gsi);
//
// Thread-safety: none; its owner serializes (MsiRoutes is used under the machine lock).

#ifndef VMMKIT_IRQ_GSI_ALLOCATOR_H_
#define VMMKIT_IRQ_GSI_ALLOCATOR_H_

#include <cstdint>
#include <set>

#include "absl/status/statusor.h"

namespace vmmkit::irq {

class GsiAllocator {
 public:
  GsiAllocator(uint32_t first, uint32_t count) : first_(first), count_(count) {}

  // RESOURCE_EXHAUSTED when every GSI of the range is in use.
  absl::StatusOr<uint32_t> Allocate();
  // Gives `gsi` back; a GSI that is not allocated is ignored.
  void Free(uint32_t gsi);
  size_t in_use() const { return used_.size(); }
  uint32_t first() const { return first_; }
  uint32_t count() const { return count_; }

 private:
  const uint32_t first_, count_;
  std::set<uint32_t> used_;
};

}  // namespace vmmkit::irq

#endif  // VMMKIT_IRQ_GSI_ALLOCATOR_H_
