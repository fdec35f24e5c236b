#include "iommu/vtd/dma_space.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace vmmkit::iommu::vtd {

absl::Status VtdDmaSpace::Translate(Iova iova, uint64_t size, IommuAccess access,
                                    std::vector<std::pair<uint64_t, uint64_t>>* pieces) const {
  if (size == 0) return absl::OkStatus();
  if (iova.raw() + (size - 1) < iova.raw()) {
    return absl::OutOfRangeError(absl::StrCat("DMA at ", iova.ToString(), " wraps"));
  }
  uint64_t done = 0;
  while (done < size) {
    const uint64_t at = iova.raw() + done;
    absl::StatusOr<IotlbEntry> e = unit_.TranslateDma(source_id_, Iova(at), access);
    if (!e.ok()) return e.status();
    const uint64_t offset = at & e->addr_mask;
    const uint64_t n = std::min(size - done, e->addr_mask + 1 - offset);
    pieces->push_back({e->translated + offset, n});
    done += n;
  }
  return absl::OkStatus();
}

absl::Status VtdDmaSpace::Read(Iova iova, absl::Span<uint8_t> dst) const {
  std::vector<std::pair<uint64_t, uint64_t>> pieces;
  if (absl::Status s = Translate(iova, dst.size(), IommuAccess::kRead, &pieces); !s.ok()) return s;
  size_t at = 0;
  for (const auto& [gpa, n] : pieces) {
    if (absl::Status s = memory_.Read(GuestAddress(gpa), dst.subspan(at, n)); !s.ok()) return s;
    at += n;
  }
  return absl::OkStatus();
}

absl::Status VtdDmaSpace::Write(Iova iova, absl::Span<const uint8_t> src) const {
  std::vector<std::pair<uint64_t, uint64_t>> pieces;
  if (absl::Status s = Translate(iova, src.size(), IommuAccess::kWrite, &pieces); !s.ok()) {
    return s;
  }
  // Every piece in RAM before the first byte is written.
  for (const auto& [gpa, n] : pieces) {
    if (absl::Status s = memory_.Translate(GuestAddress(gpa), n).status(); !s.ok()) return s;
  }
  size_t at = 0;
  for (const auto& [gpa, n] : pieces) {
    if (absl::Status s = memory_.Write(GuestAddress(gpa), src.subspan(at, n)); !s.ok()) return s;
    at += n;
  }
  return absl::OkStatus();
}

}  // namespace vmmkit::iommu::vtd
