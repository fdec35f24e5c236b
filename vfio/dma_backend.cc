#include "vfio/dma_backend.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status.h"
#include "vfio/internal/dma_checks.h"

namespace vmmkit::vfio {

bool IovaRange::Contains(Iova iova, uint64_t size) const {
  const auto last_byte = RangeLast(iova.raw(), size);
  return last_byte && iova >= start && *last_byte <= last.raw();
}

absl::Status IommuCapabilities::CheckIovaRange(Iova iova, uint64_t size) const {
  if (valid_iovas.empty()) return absl::OkStatus();
  for (const IovaRange& r : valid_iovas) {
    if (r.Contains(iova, size)) return absl::OkStatus();
  }
  return absl::OutOfRangeError(absl::StrCat(
      internal::DmaRange(iova, size), " is outside the host IOMMU's valid IOVA ranges [",
      absl::StrJoin(valid_iovas, ", ",
                    [](std::string* out, const IovaRange& r) {
                      absl::StrAppend(out, r.start.ToString(), "-", r.last.ToString());
                    }),
      "]"));
}

absl::Status DmaBackend::RegisterMemory(const GuestRegion& region, uint64_t offset, uint64_t size) {
  return internal::CheckDmaArgs([&] { return absl::StrCat(name(), ": register memory"); }, Iova(0),
                                &region, offset, size);
}

absl::Status DmaBackend::UnregisterMemory(const GuestRegion& region, uint64_t offset,
                                          uint64_t size) {
  return internal::CheckDmaArgs([&] { return absl::StrCat(name(), ": unregister memory"); },
                                Iova(0), &region, offset, size);
}

}  // namespace vmmkit::vfio
