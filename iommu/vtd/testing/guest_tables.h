// File: iommu/vtd/testing/guest_tables.h
// -----------------------------------------------------------------------------
// Testonly: VT-d translation structures written into guest RAM the way Linux's intel-iommu
// driver writes them (root and context entries, 3-level second-level tables, 4 KiB, 2 MiB and
// 1 GiB pages), from table pages allocated upward from `first_table`.

#ifndef VMMKIT_IOMMU_VTD_TESTING_GUEST_TABLES_H_
#define VMMKIT_IOMMU_VTD_TESTING_GUEST_TABLES_H_

#include <cstdint>

#include "gtest/gtest.h"
#include "memory/guest_memory.h"

namespace vmmkit::iommu::vtd::testing {

inline constexpr uint64_t kPteRead = 1, kPteWrite = 2, kPtePageSize = 1 << 7;

class GuestTables {
 public:
  GuestTables(const GuestMemory& ram, uint64_t first_table) : ram_(ram), next_(first_table) {}

  uint64_t Get(uint64_t addr) const {
    absl::StatusOr<uint64_t> v = ram_.ReadObj<uint64_t>(GuestAddress(addr));
    EXPECT_TRUE(v.ok()) << v.status();
    return v.value_or(0);
  }
  void Put(uint64_t addr, uint64_t value) const {
    EXPECT_TRUE(ram_.WriteObj(GuestAddress(addr), value).ok());
  }
  // A zeroed 4 KiB table.
  uint64_t NewTable() {
    const uint64_t t = next_;
    next_ += 0x1000;
    for (uint64_t i = 0; i < 512; ++i) Put(t + 8 * i, 0);
    return t;
  }
  // The context entry of `sid` under `root_table`, a context table allocated per bus as needed.
  void SetContext(uint64_t root_table, uint16_t sid, uint64_t lo, uint64_t hi) {
    uint64_t root_entry = Get(root_table + 16 * (sid >> 8));
    if (!(root_entry & 1)) {
      root_entry = NewTable() | 1;
      Put(root_table + 16 * (sid >> 8), root_entry);
    }
    const uint64_t ctx = (root_entry & ~uint64_t{0xfff}) + 16 * (sid & 0xff);
    Put(ctx, lo);
    Put(ctx + 8, hi);
  }
  // A multi-level (3-level) context for `domain` with page table `pt`.
  void Attach(uint64_t root_table, uint16_t sid, uint16_t domain, uint64_t pt) {
    SetContext(root_table, sid, pt | 1, 1 | (uint64_t{domain} << 8));
  }
  void Detach(uint64_t root_table, uint16_t sid) { SetContext(root_table, sid, 0, 0); }
  // Maps `iova` with one page of `size` (4 KiB, 2 MiB or 1 GiB) in the 3-level table `pt`.
  void MapPage(uint64_t pt, uint64_t iova, uint64_t size, uint64_t target, uint64_t perm) {
    uint64_t table = pt;
    for (int level = 3; level >= 1; --level) {
      const int shift = 12 + 9 * (level - 1);
      const uint64_t slot = table + 8 * ((iova >> shift) & 0x1ff);
      if ((uint64_t{1} << shift) == size) {
        Put(slot, target | perm | (level > 1 ? kPtePageSize : 0));
        return;
      }
      const uint64_t e = Get(slot);
      if ((e & 3) && !(e & kPtePageSize)) {
        table = e & ~uint64_t{0xfff};
      } else {
        const uint64_t next = NewTable();
        Put(slot, next | kPteRead | kPteWrite);
        table = next;
      }
    }
  }
  // Clears the leaf entry of `size` at `iova` (if the path to it exists).
  void UnmapPage(uint64_t pt, uint64_t iova, uint64_t size) {
    uint64_t table = pt;
    for (int level = 3; level >= 1; --level) {
      const int shift = 12 + 9 * (level - 1);
      const uint64_t slot = table + 8 * ((iova >> shift) & 0x1ff);
      if ((uint64_t{1} << shift) == size) {
        Put(slot, 0);
        return;
      }
      const uint64_t e = Get(slot);
      if (!(e & 3) || (e & kPtePageSize)) return;
      table = e & ~uint64_t{0xfff};
    }
  }

 private:
  const GuestMemory& ram_;
  uint64_t next_;
};

}  // namespace vmmkit::iommu::vtd::testing

#endif  // VMMKIT_IOMMU_VTD_TESTING_GUEST_TABLES_H_
