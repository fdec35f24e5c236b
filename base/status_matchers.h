// File: base/status_matchers.h
// -----------------------------------------------------------------------------
// gMock matchers for absl::Status and absl::StatusOr<T> (testonly; Debian's Abseil has none):
//
//   EXPECT_THAT(vm.SetMemory(...), IsOk());
//   EXPECT_THAT(mem.Read(addr, buf), StatusIs(absl::StatusCode::kOutOfRange,
//                                             HasSubstr("crosses")));
//   EXPECT_THAT(alloc.Allocate(0x1000, 0x1000), IsOkAndHolds(GuestAddress(0x10000)));

#ifndef VMMKIT_BASE_STATUS_MATCHERS_H_
#define VMMKIT_BASE_STATUS_MATCHERS_H_

#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace vmmkit {
namespace status_matchers_internal {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

class IsOkMatcher {
 public:
  using is_gtest_matcher = void;
  template <typename S>
  bool MatchAndExplain(const S& s, testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(s);
    if (!status.ok()) *listener << "which is " << status;
    return status.ok();
  }
  void DescribeTo(std::ostream* os) const { *os << "is OK"; }
  void DescribeNegationTo(std::ostream* os) const { *os << "is not OK"; }
};

class StatusIsMatcher {
 public:
  using is_gtest_matcher = void;
  StatusIsMatcher(testing::Matcher<absl::StatusCode> code,
                  testing::Matcher<const std::string&> message)
      : code_(code), message_(std::move(message)) {}
  template <typename S>
  bool MatchAndExplain(const S& s, testing::MatchResultListener* listener) const {
    const absl::Status& status = GetStatus(s);
    *listener << "which is " << status;
    return code_.Matches(status.code()) && message_.Matches(std::string(status.message()));
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has a code that ";
    code_.DescribeTo(os);
    *os << " and a message that ";
    message_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "has a code that ";
    code_.DescribeNegationTo(os);
    *os << " or a message that ";
    message_.DescribeNegationTo(os);
  }

 private:
  testing::Matcher<absl::StatusCode> code_;
  testing::Matcher<const std::string&> message_;
};

template <typename InnerMatcher>
class IsOkAndHoldsMatcher {
 public:
  using is_gtest_matcher = void;
  explicit IsOkAndHoldsMatcher(InnerMatcher inner) : inner_(std::move(inner)) {}
  template <typename T>
  bool MatchAndExplain(const absl::StatusOr<T>& s, testing::MatchResultListener* listener) const {
    if (!s.ok()) {
      *listener << "which is " << s.status();
      return false;
    }
    return testing::SafeMatcherCast<const T&>(inner_).MatchAndExplain(*s, listener);
  }
  void DescribeTo(std::ostream* os) const { *os << "is OK and holds a value that matches"; }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "is not OK or holds a value that does not match";
  }

 private:
  InnerMatcher inner_;
};

}  // namespace status_matchers_internal

// Matches an OK absl::Status or absl::StatusOr<T>.
inline status_matchers_internal::IsOkMatcher IsOk() { return {}; }

// Matches a Status/StatusOr whose code matches `code` (a StatusCode or a matcher, e.g. `_`) and,
// optionally, whose message matches `message`.
inline status_matchers_internal::StatusIsMatcher StatusIs(
    testing::Matcher<absl::StatusCode> code,
    testing::Matcher<const std::string&> message = testing::_) {
  return {code, std::move(message)};
}

// Matches an OK StatusOr<T> whose value matches `inner` (a matcher or a value).
template <typename InnerMatcher>
status_matchers_internal::IsOkAndHoldsMatcher<InnerMatcher> IsOkAndHolds(InnerMatcher inner) {
  return status_matchers_internal::IsOkAndHoldsMatcher<InnerMatcher>(std::move(inner));
}

}  // namespace vmmkit

#define ASSERT_OK(expr) ASSERT_THAT((expr), ::vmmkit::IsOk())
#define EXPECT_OK(expr) EXPECT_THAT((expr), ::vmmkit::IsOk())

// Unwraps a StatusOr in a test, failing the test (and returning) if it is not OK.
#define ASSERT_OK_AND_ASSIGN(lhs, rexpr)                                                        \
  VMMKIT_ASSERT_OK_AND_ASSIGN_IMPL_(VMMKIT_STATUS_MATCHERS_CONCAT_(vmmkit_sor_, __LINE__), lhs, \
                                    rexpr)
#define VMMKIT_ASSERT_OK_AND_ASSIGN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                      \
  ASSERT_TRUE(statusor.ok()) << statusor.status();              \
  lhs = std::move(statusor).value()
#define VMMKIT_STATUS_MATCHERS_CONCAT_INNER_(x, y) x##y
#define VMMKIT_STATUS_MATCHERS_CONCAT_(x, y) VMMKIT_STATUS_MATCHERS_CONCAT_INNER_(x, y)

#endif  // VMMKIT_BASE_STATUS_MATCHERS_H_
