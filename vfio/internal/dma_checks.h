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
// Non-empty, 4 KiB aligned, no wrap past 2^64, and (with a region) inside it. `what` prefixes the
// message.
absl::Status CheckDmaArgs(const std::string& what, Iova iova, const GuestRegion* region,
                          uint64_t offset, uint64_t size);
// Adds what a user can do about the usual kernel refusals (ENOMEM, EEXIST, EBUSY) to an error.
absl::Status WithDmaHint(const absl::Status& s);

}  // namespace vmmkit::vfio::internal

#endif  // VMMKIT_VFIO_INTERNAL_DMA_CHECKS_H_
