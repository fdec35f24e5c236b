// File: vfio/internal/dma_checks.h
// -----------------------------------------------------------------------------
// The argument checks and error wording every DmaBackend shares, so that the legacy container and
// iommufd reject the same inputs with the same messages.

#ifndef VMMKIT_VFIO_INTERNAL_DMA_CHECKS_H_
#define VMMKIT_VFIO_INTERNAL_DMA_CHECKS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "memory/address.h"
#include "memory/guest_region.h"

namespace vmmkit::vfio::internal {

inline constexpr uint64_t kDmaPage = 4096;

// "iova=0x1000 size=0x2000".
std::string DmaRange(Iova iova, uint64_t size);
// Non-empty, 4 KiB aligned, no wrap past 2^64, and (with a region) inside it.
inline bool DmaArgsOk(Iova iova, const GuestRegion* region, uint64_t offset, uint64_t size) {
  return size != 0 && iova.IsAligned(kDmaPage) && offset % kDmaPage == 0 && size % kDmaPage == 0 &&
         RangeLast(iova.raw(), size).has_value() &&
         (region == nullptr || (offset <= region->size() && size <= region->size() - offset));
}
// The error for arguments DmaArgsOk refused; `what` prefixes the message.
absl::Status DmaArgsError(const std::string& what, Iova iova, const GuestRegion* region,
                          uint64_t offset, uint64_t size);
// DmaArgsOk, or DmaArgsError with describe()'s text. Maps and unmaps are hot (a vIOMMU shadow
// makes one per guest page), so the message is only formatted when something is wrong.
template <typename Describe>
absl::Status CheckDmaArgs(const Describe& describe, Iova iova, const GuestRegion* region,
                          uint64_t offset, uint64_t size) {
  if (DmaArgsOk(iova, region, offset, size)) [[likely]] {
    return absl::OkStatus();
  }
  return DmaArgsError(describe(), iova, region, offset, size);
}
// Adds what a user can do about the usual kernel refusals (ENOMEM, EEXIST, EBUSY) to an error.
absl::Status WithDmaHint(const absl::Status& s);

}  // namespace vmmkit::vfio::internal

#endif  // VMMKIT_VFIO_INTERNAL_DMA_CHECKS_H_
