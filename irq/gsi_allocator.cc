#include "irq/gsi_allocator.h"

#include "absl/strings/str_cat.h"

namespace vmmkit::irq {

absl::StatusOr<uint32_t> GsiAllocator::Allocate() {
  uint32_t gsi = first_;
  for (uint32_t used : used_) {  // Ascending: the first gap is the lowest free GSI.
    if (used != gsi) break;
    ++gsi;
  }
  if (gsi - first_ >= count_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("all ", count_, " MSI GSIs from ", first_, " are in use"));
  }
  used_.insert(gsi);
  return gsi;
}

void GsiAllocator::Free(uint32_t gsi) { used_.erase(gsi); }

}  // namespace vmmkit::irq
