#include "iommu/types.h"

#include "absl/strings/str_cat.h"

namespace vmmkit::iommu {

const char* AccessName(IommuAccess access) {
  switch (access) {
    case IommuAccess::kNone:
      return "none";
    case IommuAccess::kRead:
      return "r";
    case IommuAccess::kWrite:
      return "w";
    case IommuAccess::kReadWrite:
      return "rw";
  }
  return "?";
}

std::string IovaMapping::ToString() const {
  return absl::StrCat("[", iova.ToString(), ", ", last().ToString(), "] -> 0x",
                      absl::Hex(translated), " ", AccessName(perm));
}

}  // namespace vmmkit::iommu
