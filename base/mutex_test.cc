#include "base/mutex.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace vmmkit {
namespace {

class Counter {
 public:
  void Add() {
    MutexLock lock(mu_);
    ++n_;
    changed_.SignalAll();
  }
  // Waits until the count reaches `n`.
  void AwaitAtLeast(int n) {
    MutexLock lock(mu_);
    changed_.Wait(mu_, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return n_ >= n; });
  }
  bool AwaitFor(int n, absl::Duration timeout) {
    MutexLock lock(mu_);
    return changed_.WaitFor(mu_, timeout,
                            [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return n_ >= n; });
  }
  int value() {
    MutexLock lock(mu_);
    return n_;
  }

 private:
  Mutex mu_;
  CondVar changed_;
  int n_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(MutexTest, ExcludesAndWakesWaiters) {
  Counter c;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&c] {
      for (int i = 0; i < 1000; ++i) c.Add();
    });
  }
  c.AwaitAtLeast(4000);
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.value(), 4000);
}

TEST(MutexTest, WaitForTimesOutWithTheLockHeldAgain) {
  Counter c;
  EXPECT_FALSE(c.AwaitFor(1, absl::Milliseconds(20)));
  c.Add();  // Would deadlock had the timed-out wait left the mutex locked.
  EXPECT_TRUE(c.AwaitFor(1, absl::Milliseconds(20)));
}

}  // namespace
}  // namespace vmmkit
