#include "base/process_counts.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace vmmkit {
namespace {

TEST(ProcessCountsTest, CountsAnOpenedFdAndAStartedThread) {
  const uint64_t fds = OpenFdCount();
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(OpenFdCount(), fds + 1);
  ::close(fd);
  EXPECT_EQ(OpenFdCount(), fds);

  // A first thread, started and joined before counting: a sanitizer's runtime starts a thread
  // of its own with the process's first one (TSan's background thread).
  std::thread([] {}).join();
  const uint64_t threads = ThreadCount();
  std::atomic<bool> stop{false};
  std::thread t([&] {
    while (!stop.load()) std::this_thread::yield();
  });
  EXPECT_EQ(ThreadCount(), threads + 1);
  stop.store(true);
  t.join();
}

}  // namespace
}  // namespace vmmkit
