#include "vmm/layout.h"

#include <algorithm>

namespace vmmkit::vmm {

std::vector<std::pair<GuestAddress, uint64_t>> RamRegions(uint64_t memory_bytes) {
  std::vector<std::pair<GuestAddress, uint64_t>> regions;
  const uint64_t low = std::min(memory_bytes, kLowRamLimit);
  regions.emplace_back(GuestAddress(0), low);
  if (memory_bytes > low) regions.emplace_back(GuestAddress(kHighRamStart), memory_bytes - low);
  return regions;
}

std::vector<loader::E820Entry> E820Map(uint64_t memory_bytes) {
  using loader::E820Type;
  const uint64_t low = std::min(memory_bytes, kLowRamLimit);
  std::vector<loader::E820Entry> map = {
      {0, kEbdaStart, E820Type::kRam},
      {kEbdaStart, 0xa0000 - kEbdaStart, E820Type::kReserved},
      {kAcpiTables.raw(), 0x100000 - kAcpiTables.raw(), E820Type::kReserved},
      {0x100000, low - 0x100000, E820Type::kRam},
      {kEcamBase, kEcamSize, E820Type::kReserved},
  };
  if (memory_bytes > low) map.push_back({kHighRamStart, memory_bytes - low, E820Type::kRam});
  return map;
}

}  // namespace vmmkit::vmm
