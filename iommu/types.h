// File: iommu/types.h
// -----------------------------------------------------------------------------
// The vocabulary of iommu/: access permissions, one IOVA -> address mapping, and the IOTLB entry a
// translation returns.
//
//   IovaMapping m{Iova(0x1000), 0x1000, 0x8000'0000, IommuAccess::kReadWrite};
//   IotlbEntry e = m.ToIotlbEntry();  // {iova 0x1000, translated 0x80000000, mask 0xfff, rw}

#ifndef VMMKIT_IOMMU_TYPES_H_
#define VMMKIT_IOMMU_TYPES_H_

#include <cstdint>
#include <string>

#include "memory/address.h"

namespace vmmkit::iommu {

enum class IommuAccess : uint8_t { kNone = 0, kRead = 1, kWrite = 2, kReadWrite = 3 };
inline bool Allows(IommuAccess granted, IommuAccess wanted) {
  return (static_cast<uint8_t>(granted) & static_cast<uint8_t>(wanted)) ==
         static_cast<uint8_t>(wanted);
}
const char* AccessName(IommuAccess access);  // "none", "r", "w", "rw"

// A translation for [iova, iova + size): iova + i -> translated + i.
struct IovaMapping {
  Iova iova;
  uint64_t size = 0;
  uint64_t translated = 0;
  IommuAccess perm = IommuAccess::kNone;

  Iova last() const { return Iova(iova.raw() + (size - 1)); }
  friend bool operator==(const IovaMapping&, const IovaMapping&) = default;
  std::string ToString() const;  // "[0x1000, 0x1fff] -> 0x80000000 rw"
};

// What Translate returns: a naturally aligned power-of-two page. addr_mask = page size - 1.
struct IotlbEntry {
  Iova iova;  // Page-aligned.
  uint64_t translated = 0;
  uint64_t addr_mask = 0;
  IommuAccess perm = IommuAccess::kNone;
  uint64_t size() const { return addr_mask + 1; }
  IovaMapping ToMapping() const { return {iova, addr_mask + 1, translated, perm}; }
  friend bool operator==(const IotlbEntry&, const IotlbEntry&) = default;
};

}  // namespace vmmkit::iommu

#endif  // VMMKIT_IOMMU_TYPES_H_
