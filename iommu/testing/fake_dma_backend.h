// File: iommu/testing/fake_dma_backend.h
// -----------------------------------------------------------------------------
// Testonly: a DmaBackend with Type1v2's rules (overlap -> EEXIST, an unmap never splits a
// mapping, pre-registration required if asked) that counts what a shadow must never do: unmap
// what is not mapped (a duplicate UNMAP) or bisect a mapping.

#ifndef VMMKIT_IOMMU_TESTING_FAKE_DMA_BACKEND_H_
#define VMMKIT_IOMMU_TESTING_FAKE_DMA_BACKEND_H_

#include <cstdint>
#include <iterator>
#include <map>

#include "absl/strings/str_cat.h"
#include "vfio/dma_backend.h"

namespace vmmkit::iommu::testing {

class FakeDmaBackend : public vfio::DmaBackend {
 public:
  struct Mapping {
    uint64_t size;
    const uint8_t* host;
    bool writable;
  };

  std::string name() const override { return "fake backend"; }
  absl::StatusOr<vfio::IommuCapabilities> GetCapabilities() const override {
    vfio::IommuCapabilities caps;
    caps.page_sizes = 0x1000;
    caps.needs_pre_registration = pre_registration;
    return caps;
  }
  bool needs_pre_registration() const override { return pre_registration; }
  absl::Status RegisterMemory(const GuestRegion& region, uint64_t offset, uint64_t size) override {
    registered[region.host_address() + offset] = size;
    return absl::OkStatus();
  }
  absl::Status UnregisterMemory(const GuestRegion& region, uint64_t, uint64_t) override {
    registered.erase(region.host_address());
    return absl::OkStatus();
  }
  absl::Status MapDma(Iova iova, const GuestRegion& region, uint64_t offset, uint64_t size,
                      bool writable) override {
    ++maps;
    if (fail_maps > 0) {
      --fail_maps;
      return absl::ResourceExhaustedError("fake: Cannot allocate memory");
    }
    if (pre_registration && registered.empty()) {
      return absl::FailedPreconditionError("fake: memory not pre-registered");
    }
    auto next = mappings.upper_bound(iova.raw() + size - 1);
    if (next != mappings.begin() &&
        std::prev(next)->first + std::prev(next)->second.size > iova.raw()) {
      return absl::AlreadyExistsError(absl::StrCat("fake: overlap at ", iova.ToString()));
    }
    mappings[iova.raw()] = {size, region.host_address() + offset, writable};
    return absl::OkStatus();
  }
  absl::Status UnmapDma(Iova iova, uint64_t size) override {
    ++unmaps;
    uint64_t removed = 0;
    for (auto it = mappings.begin(); it != mappings.end();) {
      const uint64_t last = it->first + it->second.size - 1;
      const bool overlaps = it->first <= iova.raw() + size - 1 && last >= iova.raw();
      if (overlaps && (it->first < iova.raw() || last > iova.raw() + size - 1)) {
        ++bisects;
        return absl::InvalidArgumentError("fake: would bisect a mapping");
      }
      if (overlaps) {
        removed += it->second.size;
        it = mappings.erase(it);
      } else {
        ++it;
      }
    }
    if (removed == 0) {
      ++duplicate_unmaps;
      return absl::NotFoundError("fake: nothing mapped there");
    }
    return absl::OkStatus();
  }

  // The host address of IOVA page `iova` (4 KiB), or null.
  const uint8_t* HostPage(uint64_t iova) const {
    auto it = mappings.upper_bound(iova);
    if (it == mappings.begin()) return nullptr;
    --it;
    if (iova >= it->first + it->second.size) return nullptr;
    return it->second.host + (iova - it->first);
  }

  bool pre_registration = false;
  int fail_maps = 0;
  std::map<uint64_t, Mapping> mappings;
  std::map<const uint8_t*, uint64_t> registered;
  uint64_t maps = 0, unmaps = 0, duplicate_unmaps = 0, bisects = 0;
};

}  // namespace vmmkit::iommu::testing

#endif  // VMMKIT_IOMMU_TESTING_FAKE_DMA_BACKEND_H_
