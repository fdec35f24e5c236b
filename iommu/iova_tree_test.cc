#include "iommu/iova_tree.h"

#include <map>
#include <random>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::iommu {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr IommuAccess kRw = IommuAccess::kReadWrite;

IovaMapping M(uint64_t iova, uint64_t size, uint64_t translated, IommuAccess perm = kRw) {
  return {Iova(iova), size, translated, perm};
}

TEST(IovaTreeTest, InsertRejectsOverlapsAndEmptyRanges) {
  IovaTree t;
  ASSERT_OK(t.Insert(M(0x1000, 0x2000, 0x80000)));
  ASSERT_OK(t.Insert(M(0x3000, 0x1000, 0x90000)));  // Adjacent is fine.
  EXPECT_THAT(t.Insert(M(0x2fff, 0x2, 0)),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("overlaps [0x1000, 0x2fff] -> 0x80000 rw")));
  EXPECT_THAT(t.Insert(M(0, 0x10000, 0)), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(t.Insert(M(0x5000, 0, 0)), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(t.Insert(M(~0ull, 2, 0)), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_OK(t.Insert(M(~0ull - 0xfff, 0x1000, 0)));  // Ends exactly at 2^64.
  EXPECT_EQ(t.size(), 3u);
}

TEST(IovaTreeTest, FindAndOverlap) {
  IovaTree t;
  ASSERT_OK(t.Insert(M(0x1000, 0x1000, 0xa000)));
  ASSERT_OK(t.Insert(M(0x4000, 0x2000, 0xb000, IommuAccess::kRead)));
  EXPECT_EQ(t.Find(Iova(0x1fff)), M(0x1000, 0x1000, 0xa000));
  EXPECT_EQ(t.Find(Iova(0x2000)), std::nullopt);
  EXPECT_EQ(t.Find(Iova(0)), std::nullopt);
  EXPECT_EQ(t.FindOverlap(Iova(0x2000), 0x2001), M(0x4000, 0x2000, 0xb000, IommuAccess::kRead));
  EXPECT_EQ(t.FindOverlap(Iova(0x2000), 0x2000), std::nullopt);
  EXPECT_EQ(t.Overlapping(Iova(0), 0x10000).size(), 2u);
}

TEST(IovaTreeTest, RemoveSplitsPartialOverlaps) {
  IovaTree t;
  ASSERT_OK(t.Insert(M(0x0, 0x4000, 0x100000)));
  ASSERT_OK(t.Insert(M(0x8000, 0x2000, 0x200000)));
  // Punch a hole in the middle of the first and trim the head of the second.
  EXPECT_THAT(t.Remove(Iova(0x1000), 0x1000), ElementsAre(M(0x1000, 0x1000, 0x101000)));
  EXPECT_THAT(t.Remove(Iova(0x6000), 0x3000), ElementsAre(M(0x8000, 0x1000, 0x200000)));
  EXPECT_THAT(t.mappings(), ElementsAre(M(0, 0x1000, 0x100000), M(0x2000, 0x2000, 0x102000),
                                        M(0x9000, 0x1000, 0x201000)));
  EXPECT_THAT(t.Remove(Iova(0x10000), 0x1000), IsEmpty());
  EXPECT_THAT(t.Remove(Iova(0), 0), IsEmpty());
  EXPECT_EQ(t.Remove(Iova(0), ~0ull).size(), 3u);
  EXPECT_TRUE(t.empty());
}

TEST(IovaTreeTest, FirstFitAllocationWithAlignment) {
  IovaTree t;
  ASSERT_OK(t.Insert(M(0x10000, 0x1000, 0)));
  ASSERT_OK(t.Insert(M(0x12000, 0x1000, 0)));
  EXPECT_THAT(t.FindFree(Iova(0x10000), Iova(0x1ffff), 0x1000, 0x1000),
              IsOkAndHolds(Iova(0x11000)));
  EXPECT_THAT(t.FindFree(Iova(0x10000), Iova(0x1ffff), 0x2000, 0x1000),
              IsOkAndHolds(Iova(0x13000)));
  EXPECT_THAT(t.FindFree(Iova(0x10000), Iova(0x1ffff), 0x1000, 0x4000),
              IsOkAndHolds(Iova(0x14000)));
  EXPECT_THAT(t.FindFree(Iova(0x10000), Iova(0x12fff), 0x2000, 0x1000),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("no free range")));
  EXPECT_THAT(t.FindFree(Iova(0), Iova(0xfff), 0x1000, 0x3000),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(t.FindFree(Iova(~0ull - 0xfff), Iova(~0ull), 0x1000, 0x1000),
              IsOkAndHolds(Iova(~0ull - 0xfff)));
  // Allocate takes what FindFree finds.
  EXPECT_THAT(t.Allocate(Iova(0x10000), Iova(0x1ffff), 0x1000, 0x1000, 0xabc000, kRw),
              IsOkAndHolds(Iova(0x11000)));
  EXPECT_EQ(t.Find(Iova(0x11000))->translated, 0xabc000u);
  EXPECT_THAT(t.Allocate(Iova(0x10000), Iova(0x1ffff), 0x1000, 0x1000, 0, kRw),
              IsOkAndHolds(Iova(0x13000)));
  EXPECT_THAT(t.Allocate(Iova(0x10000), Iova(0x12fff), 0x1000, 0x1000, 0, kRw),
              StatusIs(absl::StatusCode::kResourceExhausted));
}

// Randomized model test: the tree against a byte-granular (page-granular) reference.
TEST(IovaTreeTest, RandomOperationsMatchAPageModel) {
  std::mt19937_64 rng(1);
  IovaTree t;
  std::map<uint64_t, uint64_t> model;  // page -> translated page address
  constexpr uint64_t kPages = 256, kPage = 0x1000;
  for (int step = 0; step < 20000; ++step) {
    const uint64_t first = rng() % kPages, n = 1 + rng() % 8;
    const uint64_t iova = first * kPage, size = std::min(n, kPages - first) * kPage;
    if (rng() % 2) {
      const uint64_t translated = (rng() % 1000) * kPage;
      bool free = true;
      for (uint64_t p = iova; p < iova + size; p += kPage) free &= !model.count(p);
      EXPECT_EQ(t.Insert(M(iova, size, translated)).ok(), free);
      if (free) {
        for (uint64_t p = 0; p < size; p += kPage) model[iova + p] = translated + p;
      }
    } else {
      uint64_t removed = 0;
      for (const IovaMapping& m : t.Remove(Iova(iova), size)) removed += m.size;
      uint64_t expected = 0;
      for (uint64_t p = iova; p < iova + size; p += kPage) expected += model.erase(p) * kPage;
      EXPECT_EQ(removed, expected);
    }
    if (step % 100 == 0) {
      for (uint64_t p = 0; p < kPages * kPage; p += kPage) {
        auto m = t.Find(Iova(p + 0x10));
        ASSERT_EQ(m.has_value(), model.count(p) == 1) << p;
        if (m) ASSERT_EQ(m->translated + (p - m->iova.raw()), model[p]);
      }
    }
  }
}

}  // namespace
}  // namespace vmmkit::iommu
