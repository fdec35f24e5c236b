#include "irq/gsi_allocator.h"

#include <random>
#include <set>

#include "base/status_matchers.h"
#include "gtest/gtest.h"

namespace vmmkit::irq {
namespace {

TEST(GsiAllocatorTest, LowestFreeFirstAndExhaustion) {
  GsiAllocator a(24, 3);
  EXPECT_THAT(a.Allocate(), IsOkAndHolds(24u));
  EXPECT_THAT(a.Allocate(), IsOkAndHolds(25u));
  EXPECT_THAT(a.Allocate(), IsOkAndHolds(26u));
  EXPECT_THAT(a.Allocate(), StatusIs(absl::StatusCode::kResourceExhausted,
                                     ::testing::HasSubstr("all 3 MSI GSIs from 24")));
  a.Free(25);
  a.Free(99);  // Not ours: ignored.
  EXPECT_THAT(a.Allocate(), IsOkAndHolds(25u));
  EXPECT_EQ(a.in_use(), 3u);
}

TEST(GsiAllocatorTest, AgreesWithAModelUnderRandomUse) {
  GsiAllocator a(100, 16);
  std::set<uint32_t> model;
  std::mt19937 rng(7);
  for (int i = 0; i < 5000; ++i) {
    if (rng() % 2 == 0) {
      absl::StatusOr<uint32_t> gsi = a.Allocate();
      uint32_t want = 100;
      while (model.count(want)) ++want;
      if (want >= 116) {
        EXPECT_FALSE(gsi.ok());
      } else {
        ASSERT_THAT(gsi, IsOkAndHolds(want));
        model.insert(want);
      }
    } else if (!model.empty()) {
      auto it = model.begin();
      std::advance(it, rng() % model.size());
      a.Free(*it);
      model.erase(it);
    }
    ASSERT_EQ(a.in_use(), model.size());
  }
}

}  // namespace
}  // namespace vmmkit::irq
