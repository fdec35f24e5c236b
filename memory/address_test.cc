#include "memory/address.h"

#include <type_traits>

#include "absl/container/flat_hash_set.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::HasSubstr;
constexpr uint64_t kMax = ~uint64_t{0};

static_assert(!std::is_convertible_v<GuestAddress, Iova>, "GPA and IOVA must not mix");
static_assert(!std::is_convertible_v<uint64_t, GuestAddress>, "no implicit construction");
static_assert(std::is_trivially_copyable_v<GuestAddress>);

TEST(AddressTest, CheckedAddWithinRange) {
  EXPECT_THAT(GuestAddress(0x1000).CheckedAdd(0x234), IsOkAndHolds(GuestAddress(0x1234)));
  EXPECT_THAT(GuestAddress(kMax - 1).CheckedAdd(1), IsOkAndHolds(GuestAddress(kMax)));
  EXPECT_THAT(GuestAddress(kMax).CheckedAdd(0), IsOkAndHolds(GuestAddress(kMax)));
}

TEST(AddressTest, CheckedAddRejectsWrap) {
  EXPECT_THAT(GuestAddress(kMax).CheckedAdd(1),
              StatusIs(absl::StatusCode::kOutOfRange,
                       HasSubstr("guest address 0xffffffffffffffff + 0x1 wraps past 2^64")));
  EXPECT_THAT(Iova(2).CheckedAdd(kMax - 1),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("IOVA")));
  EXPECT_EQ(GuestAddress(kMax).TryAdd(1), std::nullopt);
}

TEST(AddressTest, CheckedOffsetFrom) {
  EXPECT_THAT(GuestAddress(0x3000).CheckedOffsetFrom(GuestAddress(0x1000)), IsOkAndHolds(0x2000u));
  EXPECT_THAT(GuestAddress(0x1000).CheckedOffsetFrom(GuestAddress(0x1000)), IsOkAndHolds(0u));
  EXPECT_THAT(GuestAddress(0x1000).CheckedOffsetFrom(GuestAddress(0x1001)),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("lies below 0x1001")));
}

TEST(AddressTest, Alignment) {
  EXPECT_TRUE(GuestAddress(0x200000).IsAligned(0x200000));
  EXPECT_FALSE(GuestAddress(0x201000).IsAligned(0x200000));
  EXPECT_EQ(GuestAddress(0x201234).AlignDown(0x1000), GuestAddress(0x201000));
  EXPECT_EQ(GuestAddress(0x201234).TryAlignUp(0x1000), GuestAddress(0x202000));
  EXPECT_EQ(GuestAddress(0x202000).TryAlignUp(0x1000), GuestAddress(0x202000));
  EXPECT_EQ(GuestAddress(kMax).TryAlignUp(0x1000), std::nullopt);
  EXPECT_TRUE(IsPowerOfTwo(0x1000));
  EXPECT_FALSE(IsPowerOfTwo(0));
  EXPECT_FALSE(IsPowerOfTwo(0x3000));
}

TEST(AddressTest, RangeLast) {
  EXPECT_EQ(RangeLast(0x1000, 0x1000), 0x1fffu);
  EXPECT_EQ(RangeLast(0, 0), std::nullopt);
  EXPECT_EQ(RangeLast(kMax - 0xfff, 0x1000), kMax);  // Ends exactly at 2^64: allowed.
  EXPECT_EQ(RangeLast(kMax - 0xfff, 0x1001), std::nullopt);
  EXPECT_EQ(RangeLast(kMax, 1), kMax);
  EXPECT_EQ(RangeLast(kMax, 2), std::nullopt);
}

TEST(AddressTest, ComparesHashesAndPrints) {
  EXPECT_LT(GuestAddress(1), GuestAddress(2));
  EXPECT_EQ(GuestAddress(7), GuestAddress(7));
  absl::flat_hash_set<GuestAddress> set = {GuestAddress(1), GuestAddress(1), GuestAddress(2)};
  EXPECT_EQ(set.size(), 2u);
  EXPECT_EQ(GuestAddress(0xfee00000).ToString(), "0xfee00000");
  std::ostringstream os;
  os << Iova(0x10);
  EXPECT_EQ(os.str(), "0x10");
}

}  // namespace
}  // namespace vmmkit
