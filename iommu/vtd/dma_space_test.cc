#include "iommu/vtd/dma_space.h"

#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "iommu/vtd/testing/guest_tables.h"

namespace vmmkit::iommu::vtd {
namespace {

using testing::kPteRead;
using testing::kPteWrite;

constexpr uint64_t kRoot = 0x100000;
constexpr uint16_t kSid = 0x0020;

void Write32(RemappingUnit& u, uint64_t off, uint32_t v) {
  u.Write(off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 4));
}
void Write64(RemappingUnit& u, uint64_t off, uint64_t v) {
  u.Write(off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 8));
}

TEST(VtdDmaSpaceTest, AccessesGoThroughTheGuestsTablesPageByPage) {
  ASSERT_OK_AND_ASSIGN(GuestMemory ram, GuestMemory::CreateRam({{GuestAddress(0), 16 << 20}}));
  testing::GuestTables tables(ram, 0x200000);
  RemappingUnit unit(ram, {});
  const uint64_t pt = tables.NewTable();
  tables.Attach(kRoot, kSid, 1, pt);
  // IOVA 0x10000-0x11fff: two pages, not contiguous in guest RAM; 0x12000 read-only.
  tables.MapPage(pt, 0x10000, 0x1000, 0x800000, kPteRead | kPteWrite);
  tables.MapPage(pt, 0x11000, 0x1000, 0x900000, kPteRead | kPteWrite);
  tables.MapPage(pt, 0x12000, 0x1000, 0xa00000, kPteRead);
  tables.MapPage(pt, 0x13000, 0x1000, uint64_t{1} << 32, kPteRead | kPteWrite);  // Not RAM.
  Write64(unit, kRegRtaddr, kRoot);
  Write32(unit, kRegGcmd, kGcmdSrtp);
  Write32(unit, kRegGcmd, kGcmdTe);
  VtdDmaSpace dma(unit, ram, kSid);
  std::vector<uint8_t> data(0x20, 0xab);
  ASSERT_OK(dma.Write(Iova(0x10ff0), data));  // Across the page boundary.
  ASSERT_OK_AND_ASSIGN(uint64_t low, ram.ReadObj<uint64_t>(GuestAddress(0x800ff8)));
  ASSERT_OK_AND_ASSIGN(uint64_t high, ram.ReadObj<uint64_t>(GuestAddress(0x900000)));
  EXPECT_EQ(low, 0xababababababababu);
  EXPECT_EQ(high, 0xababababababababu);
  std::vector<uint8_t> back(0x20);
  ASSERT_OK(dma.Read(Iova(0x10ff0), absl::MakeSpan(back)));
  EXPECT_EQ(back, data);
  EXPECT_THAT(dma.Write(Iova(0x11ff0), data), StatusIs(absl::StatusCode::kPermissionDenied))
      << "the second page is read-only";
  ASSERT_OK_AND_ASSIGN(uint64_t untouched, ram.ReadObj<uint64_t>(GuestAddress(0x900ff8)));
  EXPECT_EQ(untouched, 0u) << "nothing written on failure";
  EXPECT_THAT(dma.Read(Iova(0x20000), absl::MakeSpan(back)), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(dma.Read(Iova(0x13000), absl::MakeSpan(back)),
              StatusIs(absl::StatusCode::kOutOfRange))
      << "translated outside guest RAM";
  EXPECT_THAT(dma.Read(Iova(~uint64_t{0} - 4), absl::MakeSpan(back)),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_GE(unit.counters().faults_recorded, 1u);
}

}  // namespace
}  // namespace vmmkit::iommu::vtd
