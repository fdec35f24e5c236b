#include "base/token_bucket.h"

#include "gtest/gtest.h"

namespace vmmkit {
namespace {

TEST(TokenBucketTest, UnlimitedIsAlwaysReady) {
  const absl::Time t = absl::UnixEpoch();
  TokenBucket b(0, t);
  b.Take(1 << 30);
  EXPECT_TRUE(b.Ready(t));
  EXPECT_EQ(b.UntilReady(t), absl::ZeroDuration());
}

TEST(TokenBucketTest, HoldsTheRateOverTime) {
  absl::Time t = absl::UnixEpoch();
  TokenBucket b(1000, t);  // 1000 a second.
  // A second's worth at once (the bucket starts full), then one item of 500 overdraws it.
  int sent = 0;
  while (b.Ready(t)) {
    b.Take(500);
    ++sent;
  }
  EXPECT_EQ(sent, 2);
  // 1000 in, -0 left: the next item waits for a token.
  EXPECT_GT(b.UntilReady(t), absl::ZeroDuration());
  EXPECT_LE(b.UntilReady(t), absl::Milliseconds(2));
  // Over ten simulated seconds, in 1 ms steps: 10 s * 1000/s / 500 per item = 20 items, plus at
  // most the bucket's second.
  int later = 0;
  for (int ms = 0; ms < 10000; ++ms) {
    t += absl::Milliseconds(1);
    if (b.Ready(t)) {
      b.Take(500);
      ++later;
    }
  }
  EXPECT_GE(later, 19);
  EXPECT_LE(later, 21);
}

TEST(TokenBucketTest, IdleTimeFillsNoMoreThanASecond) {
  absl::Time t = absl::UnixEpoch();
  TokenBucket b(100, t);
  t += absl::Hours(1);
  int sent = 0;
  while (b.Ready(t)) {
    b.Take(10);
    ++sent;
  }
  EXPECT_EQ(sent, 10);
  EXPECT_FALSE(b.Ready(t - absl::Seconds(1))) << "time going backwards adds nothing";
}

}  // namespace
}  // namespace vmmkit
