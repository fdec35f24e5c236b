// File: iommu/testing/page_table_iommu.h
// -----------------------------------------------------------------------------
// Testonly: the smallest guest IOMMU model: a "guest page table" of 4 KiB and 2 MiB pages held in
// a map, which tests write the way a guest would (then invalidate, as a caching-mode guest must).

#ifndef VMMKIT_IOMMU_TESTING_PAGE_TABLE_IOMMU_H_
#define VMMKIT_IOMMU_TESTING_PAGE_TABLE_IOMMU_H_

#include <map>

#include "absl/strings/str_cat.h"
#include "iommu/iommu.h"

namespace vmmkit::iommu::testing {

class PageTableIommu : public IommuModel {
 public:
  // The guest makes a page present (replacing any page there) or removes it.
  void SetPage(uint64_t iova, uint64_t size, uint64_t translated, IommuAccess perm) {
    ClearRange(iova, size);
    pages_[iova] = {Iova(iova), translated, size - 1, perm};
  }
  void ClearRange(uint64_t iova, uint64_t size) {
    for (auto it = pages_.begin(); it != pages_.end();) {
      const uint64_t last = it->first + it->second.addr_mask;
      if (it->first < iova + size && last >= iova) {
        it = pages_.erase(it);
      } else {
        ++it;
      }
    }
  }
  const std::map<uint64_t, IotlbEntry>& pages() const { return pages_; }
  int translations = 0, walks = 0;

  absl::StatusOr<IotlbEntry> Translate(Iova iova, IommuAccess access) override {
    ++translations;
    auto it = pages_.upper_bound(iova.raw());
    if (it == pages_.begin() ||
        std::prev(it)->first + std::prev(it)->second.addr_mask < iova.raw()) {
      return absl::NotFoundError(absl::StrCat("no translation for ", iova.ToString()));
    }
    const IotlbEntry& e = std::prev(it)->second;
    if (!Allows(e.perm, access)) return absl::PermissionDeniedError("access not allowed");
    return e;
  }
  void Walk(Iova start, Iova last, const std::function<void(const IotlbEntry&)>& visit) override {
    ++walks;
    auto it = pages_.upper_bound(start.raw());
    if (it != pages_.begin() &&
        std::prev(it)->first + std::prev(it)->second.addr_mask >= start.raw()) {
      --it;
    }
    for (; it != pages_.end() && it->first <= last.raw(); ++it) visit(it->second);
  }

 private:
  std::map<uint64_t, IotlbEntry> pages_;
};

}  // namespace vmmkit::iommu::testing

#endif  // VMMKIT_IOMMU_TESTING_PAGE_TABLE_IOMMU_H_
