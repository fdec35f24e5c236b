#include "vfio/internal/dma_checks.h"

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::vfio::internal {

std::string DmaRange(Iova iova, uint64_t size) {
  return absl::StrCat("iova=", iova.ToString(), " size=", Hex(size));
}

absl::Status DmaArgsError(const std::string& what, Iova iova, const GuestRegion* region,
                          uint64_t offset, uint64_t size) {
  if (size == 0 || !iova.IsAligned(kDmaPage) || offset % kDmaPage != 0 || size % kDmaPage != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " offset=", Hex(offset), ": must be non-empty and 4 KiB aligned"));
  }
  if (!RangeLast(iova.raw(), size)) {
    return absl::OutOfRangeError(absl::StrCat(what, ": wraps past 2^64"));
  }
  if (region != nullptr && (offset > region->size() || size > region->size() - offset)) {
    return absl::OutOfRangeError(absl::StrCat(what, " offset=", Hex(offset), ": outside the ",
                                              Hex(region->size()), "-byte region"));
  }
  return absl::InternalError(absl::StrCat(what, ": arguments refused"));  // Not reached.
}

absl::Status WithDmaHint(const absl::Status& s) {
  const char* hint = nullptr;
  switch (s.code()) {
    case absl::StatusCode::kResourceExhausted:  // ENOMEM
      hint = " (pinning guest memory counts against RLIMIT_MEMLOCK: raise it, e.g. ulimit -l)";
      break;
    case absl::StatusCode::kAlreadyExists:  // EEXIST
      hint = " (the range overlaps an existing mapping)";
      break;
    case absl::StatusCode::kInvalidArgument:  // EINVAL
      hint =
          " (check the range against GetCapabilities(): valid IOVA ranges and page sizes; an "
          "unmap must cover whole mappings)";
      break;
    case absl::StatusCode::kFailedPrecondition:  // EBUSY
      hint = " (the IOMMU context is busy: is an IOMMU model set and a device attached?)";
      break;
    default:
      return s;
  }
  return absl::Status(s.code(), absl::StrCat(s.message(), hint));
}

}  // namespace vmmkit::vfio::internal
