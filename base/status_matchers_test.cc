#include "base/status_matchers.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::Gt;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(StatusMatchersTest, IsOk) {
  EXPECT_THAT(absl::OkStatus(), IsOk());
  EXPECT_THAT(absl::StatusOr<int>(3), IsOk());
  EXPECT_THAT(absl::InternalError("x"), Not(IsOk()));
  EXPECT_THAT(absl::StatusOr<int>(absl::InternalError("x")), Not(IsOk()));
}

TEST(StatusMatchersTest, StatusIsChecksCodeAndMessage) {
  absl::Status s = absl::OutOfRangeError("read crosses the end of region");
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(s, StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("crosses")));
  EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kInvalidArgument)));
  EXPECT_THAT(s, Not(StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("hole"))));
  EXPECT_THAT(absl::StatusOr<int>(s), StatusIs(absl::StatusCode::kOutOfRange));
  // Any code, specific message: for errors whose code depends on the kernel.
  EXPECT_THAT(s, StatusIs(testing::_, HasSubstr("crosses")));
  EXPECT_THAT(absl::OkStatus(), Not(StatusIs(testing::_, HasSubstr("crosses"))));
}

TEST(StatusMatchersTest, IsOkAndHolds) {
  EXPECT_THAT(absl::StatusOr<int>(5), IsOkAndHolds(5));
  EXPECT_THAT(absl::StatusOr<int>(5), IsOkAndHolds(Gt(4)));
  EXPECT_THAT(absl::StatusOr<int>(5), Not(IsOkAndHolds(6)));
  EXPECT_THAT(absl::StatusOr<int>(absl::NotFoundError("x")), Not(IsOkAndHolds(5)));
}

TEST(StatusMatchersTest, ExplainsMismatch) {
  testing::StringMatchResultListener listener;
  auto matcher = testing::Matcher<absl::Status>(IsOk());
  EXPECT_FALSE(matcher.MatchAndExplain(absl::InternalError("why"), &listener));
  EXPECT_THAT(listener.str(), HasSubstr("why"));
}

}  // namespace
}  // namespace vmmkit
