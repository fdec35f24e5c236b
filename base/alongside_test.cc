#include "base/alongside.h"

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "gtest/gtest.h"

namespace vmmkit {
namespace {

TEST(AlongsideTest, TheWorkRunsWhileTheOwnerGoesOn) {
  std::promise<void> owner_waiting;
  std::atomic<bool> done = false;
  std::thread::id worker;
  Alongside helper([&] {
    worker = std::this_thread::get_id();
    owner_waiting.get_future().wait();  // Would never end if the work ran in the owner's thread.
    done = true;
  });
  EXPECT_FALSE(done);
  owner_waiting.set_value();
  helper.Join();
  EXPECT_TRUE(done);
  EXPECT_NE(worker, std::this_thread::get_id());
  helper.Join();  // Idempotent.
}

TEST(AlongsideTest, DestructionWaitsForTheWork) {
  std::atomic<int> runs = 0;
  {
    Alongside helper([&] {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ++runs;
    });
  }
  EXPECT_EQ(runs, 1);
}

size_t ThreadCount() {
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    (void)entry;
    ++n;
  }
  return n;
}

TEST(AlongsideTest, EmptyWorkStartsNoThread) {
  const size_t before = ThreadCount();
  Alongside helper(nullptr);
  EXPECT_EQ(ThreadCount(), before);
  helper.Join();
  helper.Join();  // Nothing to wait for, twice.
}

}  // namespace
}  // namespace vmmkit
