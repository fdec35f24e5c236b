#include "memory/address_allocator.h"

#include <random>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::HasSubstr;
constexpr uint64_t kMax = ~uint64_t{0};

AddressAllocator Make(uint64_t base, uint64_t size) {
  auto a = AddressAllocator::Create(base, size);
  EXPECT_TRUE(a.ok()) << a.status();
  return std::move(a).value();
}

TEST(AddressAllocatorTest, FirstFitWithAlignment) {
  AddressAllocator a = Make(0x1000, 0x10000);
  EXPECT_THAT(a.Allocate(0x100, 0x10), IsOkAndHolds(0x1000u));
  EXPECT_THAT(a.Allocate(0x1000, 0x1000), IsOkAndHolds(0x2000u));  // Skips to alignment.
  EXPECT_THAT(a.Allocate(0x100, 0x100), IsOkAndHolds(0x1100u));    // Fills the first gap.
  EXPECT_THAT(a.Allocate(0x4000, 0x4000), IsOkAndHolds(0x4000u));
  EXPECT_EQ(a.allocation_count(), 4u);
}

TEST(AddressAllocatorTest, ExhaustionIsResourceExhaustedAndNamesTheRequest) {
  AddressAllocator a = Make(0, 0x3000);
  ASSERT_OK(a.Allocate(0x1000, 0x1000));
  ASSERT_OK(a.Reserve(0x2000, 0x1000));
  EXPECT_THAT(
      a.Allocate(0x2000, 0x1000),
      StatusIs(absl::StatusCode::kResourceExhausted,
               HasSubstr("no free range of 0x2000 bytes aligned to 0x1000 (0x1000 bytes free")));
  EXPECT_THAT(a.Allocate(0x1000, 0x1000), IsOkAndHolds(0x1000u));
  EXPECT_EQ(a.free_bytes(), 0u);
  EXPECT_THAT(a.Allocate(1, 1), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(AddressAllocatorTest, ReserveExactRanges) {
  AddressAllocator a = Make(0xc0000000, 0x40000000);
  ASSERT_OK(a.Reserve(0xfec00000, 0x1000));
  EXPECT_THAT(a.Reserve(0xfec00fff, 2), StatusIs(absl::StatusCode::kAlreadyExists,
                                                 HasSubstr("overlaps [0xfec00000, 0xfec00fff]")));
  EXPECT_THAT(a.Reserve(0xfebff000, 0x2000), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_OK(a.Reserve(0xfebff000, 0x1000));  // Adjacent is fine.
  EXPECT_THAT(a.Reserve(0xbffff000, 0x2000),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("outside the window")));
  EXPECT_THAT(a.Reserve(0xfffff000, 0x2000), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(a.Reserve(0xd0000000, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(a.Reserve(kMax, 2), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wraps")));
}

TEST(AddressAllocatorTest, FreeReturnsSpaceAndRejectsUnknownStarts) {
  AddressAllocator a = Make(0, 0x2000);
  ASSERT_OK_AND_ASSIGN(uint64_t x, a.Allocate(0x2000, 0x1000));
  EXPECT_THAT(a.Free(x + 0x1000), StatusIs(absl::StatusCode::kNotFound, HasSubstr("0x1000")));
  ASSERT_OK(a.Free(x));
  EXPECT_THAT(a.Free(x), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ(a.free_bytes(), 0x2000u);
}

TEST(AddressAllocatorTest, BadArguments) {
  EXPECT_THAT(AddressAllocator::Create(0, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(AddressAllocator::Create(kMax, 2), StatusIs(absl::StatusCode::kInvalidArgument));
  AddressAllocator a = Make(0, 0x1000);
  EXPECT_THAT(a.Allocate(0, 8), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("size 0")));
  EXPECT_THAT(a.Allocate(8, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("power of two")));
  EXPECT_THAT(a.Allocate(8, 24), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(AddressAllocatorTest, WindowEndingAt2To64) {
  AddressAllocator a = Make(kMax - 0xffff, 0x10000);
  EXPECT_EQ(a.last(), kMax);
  EXPECT_THAT(a.Allocate(0x8000, 0x8000), IsOkAndHolds(kMax - 0xffff));
  EXPECT_THAT(a.Allocate(0x8000, 0x8000), IsOkAndHolds(kMax - 0x7fff));
  EXPECT_THAT(a.Allocate(1, 1), StatusIs(absl::StatusCode::kResourceExhausted));
  // Alignment that would wrap past 2^64 finds nothing rather than wrapping to 0.
  AddressAllocator b = Make(kMax - 0xfff, 0x1000);
  EXPECT_THAT(b.Allocate(0x10, 0x10000), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(AddressAllocatorTest, WholeSpaceWindowViaReserve) {
  ASSERT_OK_AND_ASSIGN(AddressAllocator a, AddressAllocator::Create(1, kMax));  // [1, 2^64)
  EXPECT_EQ(a.free_bytes(), kMax);
  ASSERT_OK(a.Reserve(1, kMax));  // One allocation covering all of it.
  EXPECT_EQ(a.free_bytes(), 0u);
  EXPECT_THAT(a.Allocate(1, 1), StatusIs(absl::StatusCode::kResourceExhausted));
}

// Model-based: a bitmap over a 256-unit window; every operation is checked against it.
TEST(AddressAllocatorTest, RandomizedAgainstBitmapModel) {
  std::mt19937_64 rng(7);
  constexpr uint64_t kUnits = 256;
  AddressAllocator a = Make(0x1000, kUnits);
  std::vector<int> owner(kUnits, -1);  // Unit -> allocation start, or -1.
  std::vector<uint64_t> live;
  for (int op = 0; op < 20000; ++op) {
    const int kind = static_cast<int>(rng() % 3);
    if (kind == 0) {
      const uint64_t size = 1 + rng() % 24;
      const uint64_t align = uint64_t{1} << (rng() % 5);
      // Reference first fit.
      std::optional<uint64_t> expect;
      for (uint64_t s = 0; s + size <= kUnits && !expect; s += 1) {
        if ((0x1000 + s) % align != 0) continue;
        bool free = true;
        for (uint64_t i = s; i < s + size && free; ++i) free = owner[i] < 0;
        if (free) expect = s;
      }
      auto got = a.Allocate(size, align);
      ASSERT_EQ(got.ok(), expect.has_value()) << got.status();
      if (got.ok()) {
        ASSERT_EQ(*got, 0x1000 + *expect);
        for (uint64_t i = *expect; i < *expect + size; ++i) owner[i] = static_cast<int>(*expect);
        live.push_back(*got);
      } else {
        ASSERT_EQ(got.status().code(), absl::StatusCode::kResourceExhausted);
      }
    } else if (kind == 1) {
      const uint64_t s = rng() % (kUnits + 8), size = 1 + rng() % 16;
      bool expect = s + size <= kUnits;
      for (uint64_t i = s; expect && i < s + size; ++i) expect = owner[i] < 0;
      absl::Status st = a.Reserve(0x1000 + s, size);
      ASSERT_EQ(st.ok(), expect) << st;
      if (expect) {
        for (uint64_t i = s; i < s + size; ++i) owner[i] = static_cast<int>(s);
        live.push_back(0x1000 + s);
      }
    } else if (!live.empty()) {
      const size_t k = rng() % live.size();
      ASSERT_OK(a.Free(live[k]));
      for (auto& o : owner)
        if (o == static_cast<int>(live[k] - 0x1000)) o = -1;
      live.erase(live.begin() + static_cast<long>(k));
    }
    uint64_t free_units = 0;
    for (int o : owner) free_units += o < 0;
    ASSERT_EQ(a.free_bytes(), free_units);
  }
}

}  // namespace
}  // namespace vmmkit
