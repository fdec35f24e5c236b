#include "base/status_macros.h"

#include <memory>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

absl::Status Fails() { return absl::InternalError("boom"); }
absl::StatusOr<std::unique_ptr<int>> MakeInt(bool ok) {
  if (!ok) return absl::NotFoundError("no int");
  return std::make_unique<int>(7);
}

TEST(ReturnIfErrorTest, ReturnsTheErrorAndStops) {
  int reached = 0;
  auto f = [&]() -> absl::Status {
    RETURN_IF_ERROR(Fails());
    ++reached;
    return absl::OkStatus();
  };
  EXPECT_THAT(f(), StatusIs(absl::StatusCode::kInternal, "boom"));
  EXPECT_EQ(reached, 0);
}

TEST(ReturnIfErrorTest, ContinuesOnOk) {
  int evaluations = 0;
  auto f = [&]() -> absl::Status {
    RETURN_IF_ERROR((++evaluations, absl::OkStatus()));
    return absl::AbortedError("after");
  };
  EXPECT_THAT(f(), StatusIs(absl::StatusCode::kAborted));
  EXPECT_EQ(evaluations, 1);  // The expression is evaluated exactly once.
}

TEST(AssignOrReturnTest, DeclaresAndMovesMoveOnlyValues) {
  auto f = [](bool ok) -> absl::StatusOr<int> {
    ASSIGN_OR_RETURN(std::unique_ptr<int> p, MakeInt(ok));
    ASSIGN_OR_RETURN(auto q, MakeInt(ok));  // Two in one scope do not collide.
    return *p + *q;
  };
  EXPECT_THAT(f(true), IsOkAndHolds(14));
  EXPECT_THAT(f(false), StatusIs(absl::StatusCode::kNotFound, "no int"));
}

TEST(AssignOrReturnTest, AssignsToExistingLvalue) {
  auto f = []() -> absl::Status {
    std::unique_ptr<int> p;
    ASSIGN_OR_RETURN(p, MakeInt(true));
    return *p == 7 ? absl::OkStatus() : absl::InternalError("wrong value");
  };
  EXPECT_OK(f());
}

}  // namespace
}  // namespace vmmkit
