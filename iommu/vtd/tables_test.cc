#include "iommu/vtd/tables.h"

#include <map>
#include <random>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "iommu/vtd/testing/guest_tables.h"

namespace vmmkit::iommu::vtd {
namespace {

constexpr uint64_t kRam = 64 << 20;
constexpr uint64_t kRootTable = 0x100000;
constexpr uint64_t kContextTable = 0x101000;
constexpr uint64_t kR = 1, kW = 2, kPs = 1 << 7;
constexpr TableLimits kLimits{.haw = 39, .sagaw = (1u << 1) | (1u << 2), .pass_through = true};

// Guest RAM in which tests write tables as a guest driver would.
class TablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::pair<GuestAddress, uint64_t> layout[] = {{GuestAddress(0), kRam}};
    ASSERT_OK_AND_ASSIGN(GuestMemory ram, GuestMemory::CreateRam(layout));
    ram_.emplace(std::move(ram));
    tables_.emplace(*ram_, 0x200000);
  }
  void Put(uint64_t addr, uint64_t value) { tables_->Put(addr, value); }
  // Root entry for `bus` -> kContextTable; context entry for `devfn`.
  void SetContext(uint8_t bus, uint8_t devfn, uint64_t lo, uint64_t hi) {
    Put(kRootTable + 16 * bus, kContextTable | 1);
    Put(kContextTable + 16 * devfn, lo);
    Put(kContextTable + 16 * devfn + 8, hi);
  }
  uint64_t NewTable() { return tables_->NewTable(); }
  void MapPage(uint64_t root, uint64_t iova, uint64_t size, uint64_t target, uint64_t perm) {
    tables_->MapPage(root, iova, size, target, perm);
  }
  std::vector<IotlbEntry> WalkAll(SecondLevelWalk& walk, uint64_t start = 0,
                                  uint64_t last = ~uint64_t{0}) {
    std::vector<IotlbEntry> out;
    walk.Walk(start, last, [&](const IotlbEntry& e) { out.push_back(e); });
    return out;
  }

  std::optional<GuestMemory> ram_;
  std::optional<testing::GuestTables> tables_;
};

TEST_F(TablesTest, AValidContextGivesItsDomainTypeAndTable) {
  SetContext(0, 0x18, 0x300000 | 1, 1 | (42 << 8));  // 3 levels, domain 42.
  ContextLookup c = LookupContext(*ram_, kRootTable, 0x0018, kLimits);
  ASSERT_EQ(c.fault, FaultReason::kNone);
  EXPECT_EQ(c.context->domain, 42);
  EXPECT_EQ(c.context->type, TranslationType::kMultiLevel);
  EXPECT_EQ(c.context->table.root, 0x300000u);
  EXPECT_EQ(c.context->table.levels, 3);
  SetContext(0, 0x20, 0x300000 | 1, 2 | (7 << 8) | (0xf << 3));  // 4 levels; ignored bits set.
  c = LookupContext(*ram_, kRootTable, 0x0020, kLimits);
  ASSERT_EQ(c.fault, FaultReason::kNone);
  EXPECT_EQ(c.context->table.levels, 4);
  SetContext(0, 0x28, (2 << 2) | 1, 1 | (3 << 8));  // Pass-through.
  c = LookupContext(*ram_, kRootTable, 0x0028, kLimits);
  ASSERT_EQ(c.fault, FaultReason::kNone);
  EXPECT_EQ(c.context->type, TranslationType::kPassThrough);
}

TEST_F(TablesTest, EachBrokenContextHasItsFaultReason) {
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 0x0100, kLimits).fault, FaultReason::kRootNotPresent);
  EXPECT_EQ(LookupContext(*ram_, kRam, 0, kLimits).fault, FaultReason::kRootTableAccess);
  Put(kRootTable + 16 * 2, kContextTable | 1 | (1 << 5));
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 0x0200, kLimits).fault, FaultReason::kRootReserved);
  Put(kRootTable + 16 * 3, (uint64_t{1} << 40) | 1);  // Beyond the 39-bit width.
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 0x0300, kLimits).fault, FaultReason::kRootReserved);
  Put(kRootTable + 16 * 4, ((kRam + 0x1000) & ~uint64_t{0xfff}) | 1);  // Outside RAM.
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 0x0400, kLimits).fault,
            FaultReason::kContextTableAccess);

  SetContext(0, 1, 0x300000, 1);  // Not present.
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 1, kLimits).fault, FaultReason::kContextNotPresent);
  SetContext(0, 2, 0x300000 | 1 | (1 << 4), 1);  // Reserved low bit.
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 2, kLimits).fault, FaultReason::kContextReserved);
  SetContext(0, 3, 0x300000 | 1, 1 | (1 << 7));  // Reserved high bit 7.
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 3, kLimits).fault, FaultReason::kContextReserved);
  SetContext(0, 4, 0x300000 | 1, 1 | (uint64_t{1} << 30));
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 4, kLimits).fault, FaultReason::kContextReserved);
  SetContext(0, 5, 0x300000 | 1 | (1 << 2), 1);  // Device-TLB type: not offered.
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 5, kLimits).fault, FaultReason::kContextInvalid);
  SetContext(0, 6, 0x300000 | 1 | (3 << 2), 1);  // Reserved type.
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 6, kLimits).fault, FaultReason::kContextInvalid);
  SetContext(0, 7, 0x300000 | 1, 3);  // 57-bit, 5 levels: not offered.
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 7, kLimits).fault, FaultReason::kContextInvalid);
  TableLimits only39 = kLimits;
  only39.sagaw = 1u << 1;
  only39.pass_through = false;
  SetContext(0, 8, 0x300000 | 1, 2);
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 8, only39).fault, FaultReason::kContextInvalid);
  SetContext(0, 9, (2 << 2) | 1, 1);
  EXPECT_EQ(LookupContext(*ram_, kRootTable, 9, only39).fault, FaultReason::kContextInvalid);
}

TEST_F(TablesTest, PagesOfEachSizeTranslateWithTheirPermissions) {
  const uint64_t root = NewTable();
  MapPage(root, 0x1000, 0x1000, 0x800000, kR);
  MapPage(root, 0x40000000 + 0x200000, 0x200000, 0x1000000, kR | kW);
  MapPage(root, uint64_t{3} << 30, uint64_t{1} << 30, 0, kW);
  SecondLevelWalk walk(*ram_, {.root = root, .levels = 3}, 39);
  PageLookup p = walk.Translate(0x1234);
  ASSERT_EQ(p.fault, FaultReason::kNone);
  EXPECT_EQ(*p.page, (IotlbEntry{Iova(0x1000), 0x800000, 0xfff, IommuAccess::kRead}));
  p = walk.Translate(0x40000000 + 0x2fffff);
  ASSERT_EQ(p.fault, FaultReason::kNone);
  EXPECT_EQ(*p.page, (IotlbEntry{Iova(0x40200000), 0x1000000, 0x1fffff, IommuAccess::kReadWrite}));
  p = walk.Translate((uint64_t{3} << 30) + 12345);
  ASSERT_EQ(p.fault, FaultReason::kNone);
  EXPECT_EQ(*p.page, (IotlbEntry{Iova(uint64_t{3} << 30), 0, (1 << 30) - 1, IommuAccess::kWrite}));
  EXPECT_EQ(walk.Translate(0x2000).fault, FaultReason::kReadDenied) << "not present";
  EXPECT_EQ(walk.Translate(uint64_t{1} << 39).fault, FaultReason::kAddressBeyondAgaw);
}

TEST_F(TablesTest, BrokenEntriesFaultAndAreSkippedByWalks) {
  const uint64_t root = NewTable();
  MapPage(root, 0x1000, 0x1000, 0x800000, kR | kW);
  MapPage(root, 0x5000, 0x1000, 0x900000, kR | kW);
  // 0x2000: snoop (bit 11) set, which this unit reserves.
  MapPage(root, 0x2000, 0x1000, 0x801000 | (1 << 11), kR);
  // 0x3000: an address beyond the 39-bit width.
  MapPage(root, 0x3000, 0x1000, uint64_t{1} << 40, kR);
  // A 2 MiB page with bits 20:12 set.
  MapPage(root, 0x400000, 0x200000, 0x1000000 | 0x1000, kR);
  // 1 GiB slot 1 points at a table outside RAM.
  Put(root + 8, (kRam + 0x10000) | kR | kW);
  SecondLevelWalk walk(*ram_, {.root = root, .levels = 3}, 39);
  EXPECT_EQ(walk.Translate(0x2000).fault, FaultReason::kPageTableReserved);
  EXPECT_EQ(walk.Translate(0x3000).fault, FaultReason::kPageTableReserved);
  EXPECT_EQ(walk.Translate(0x400000).fault, FaultReason::kPageTableReserved);
  EXPECT_EQ(walk.Translate(0x40000000).fault, FaultReason::kPageTableAccess);
  std::vector<IotlbEntry> pages = WalkAll(walk);
  ASSERT_EQ(pages.size(), 2u);
  EXPECT_EQ(pages[0].iova, Iova(0x1000));
  EXPECT_EQ(pages[1].iova, Iova(0x5000));
  EXPECT_EQ(walk.faults(), 4u);
  EXPECT_EQ(walk.first_fault(), FaultReason::kPageTableReserved);
  // A 4-level table whose top entry sets PS (reserved at level 4).
  const uint64_t top = NewTable();
  Put(top, root | kR | kW | kPs);
  SecondLevelWalk four(*ram_, {.root = top, .levels = 4}, 39);
  EXPECT_EQ(four.Translate(0x1000).fault, FaultReason::kPageTableReserved);
  Put(top, root | kR | kW);
  EXPECT_EQ(four.Translate(0x1000).fault, FaultReason::kNone);
}

TEST_F(TablesTest, WalksVisitOnlyTheRangeInOrder) {
  const uint64_t root = NewTable();
  for (uint64_t i = 0; i < 8; ++i) MapPage(root, 0x10000 * i, 0x1000, 0x800000 + 0x1000 * i, kR);
  MapPage(root, 0x200000, 0x200000, 0x1000000, kR);
  SecondLevelWalk walk(*ram_, {.root = root, .levels = 3}, 39);
  std::vector<IotlbEntry> pages = WalkAll(walk, 0x20000, 0x200000);
  ASSERT_EQ(pages.size(), 7u);
  EXPECT_EQ(pages.front().iova, Iova(0x20000));
  EXPECT_EQ(pages.back().iova, Iova(0x200000)) << "a large page overlapping the end counts";
  for (size_t i = 1; i < pages.size(); ++i) EXPECT_LT(pages[i - 1].iova, pages[i].iova);
  EXPECT_THAT(WalkAll(walk, 0x201000, 0x201000), ::testing::SizeIs(1))
      << "a large page overlapping the start counts";
  EXPECT_THAT(WalkAll(walk, uint64_t{1} << 39, ~uint64_t{0}), ::testing::IsEmpty());
}

// Tables that point at themselves at every level would make a full walk visit 512^3 pages.
TEST_F(TablesTest, ASelfReferencingTableStopsAtTheReadBudget) {
  const uint64_t root = NewTable();
  for (uint64_t i = 0; i < 512; ++i) Put(root + 8 * i, root | kR | kW);
  SecondLevelWalk walk(*ram_, {.root = root, .levels = 3}, 39, /*max_reads=*/100000);
  uint64_t visited = 0;
  EXPECT_FALSE(walk.Walk(0, ~uint64_t{0}, [&](const IotlbEntry&) { ++visited; }));
  EXPECT_LE(visited, 100000u);
  EXPECT_GT(visited, 0u);
}

// Random edits of a 3-level table, as a guest driver makes them: a walk always finds exactly
// the pages of a reference map, and Translate agrees page by page.
TEST_F(TablesTest, RandomTablesMatchAReferenceMap) {
  std::mt19937_64 rng(7);
  const uint64_t root = NewTable();
  std::map<uint64_t, IotlbEntry> want;  // 4 KiB and 2 MiB pages, disjoint.
  for (int step = 0; step < 2000; ++step) {
    const bool big = rng() % 8 == 0;
    const uint64_t size = big ? 0x200000 : 0x1000;
    const uint64_t iova = (rng() % (uint64_t{1} << 31)) & ~(size - 1);
    const uint64_t target = (rng() % (uint64_t{1} << 34)) & ~(size - 1);
    const uint64_t perm = 1 + rng() % 3;
    // Skip pages that would overlap an existing one of the other size.
    const uint64_t block = iova & ~uint64_t{0x1fffff};
    bool clash = false;
    for (auto it = want.lower_bound(block); it != want.end() && it->first < block + 0x200000;
         ++it) {
      clash |= big || it->second.size() != size;
    }
    if (clash) continue;
    MapPage(root, iova, size, target, perm);
    want[iova] = IotlbEntry{Iova(iova), target, size - 1, static_cast<IommuAccess>(perm)};
  }
  SecondLevelWalk walk(*ram_, {.root = root, .levels = 3}, 39);
  std::vector<IotlbEntry> got = WalkAll(walk);
  ASSERT_EQ(got.size(), want.size());
  size_t i = 0;
  for (const auto& [iova, e] : want) {
    EXPECT_EQ(got[i++], e);
    PageLookup p = walk.Translate(iova + (rng() % e.size()));
    ASSERT_EQ(p.fault, FaultReason::kNone);
    EXPECT_EQ(*p.page, e);
  }
  EXPECT_EQ(walk.faults(), 0u);
}

}  // namespace
}  // namespace vmmkit::iommu::vtd
