#include "base/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

// Redirects stderr into a pipe for the lifetime of the object.
class CaptureStderr {
 public:
  CaptureStderr() {
    EXPECT_EQ(::pipe2(pipe_, O_CLOEXEC), 0);
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(pipe_[1], STDERR_FILENO);
  }
  std::string Finish() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    ::close(pipe_[1]);
    std::string out;
    char buf[256];
    ssize_t n;
    while ((n = ::read(pipe_[0], buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    ::close(pipe_[0]);
    return out;
  }

 private:
  int pipe_[2];
  int saved_;
};

TEST(LogTest, WritesOneLinePerCallWithLevel) {
  CaptureStderr capture;
  LogInfo("booted in ", 42, " ms");
  LogWarning("guest wrote ", Hex(0xff), " to a read-only register");
  LogError("KVM_RUN failed");
  EXPECT_EQ(capture.Finish(),
            "vmmkit info: booted in 42 ms\n"
            "vmmkit warning: guest wrote 0xff to a read-only register\n"
            "vmmkit error: KVM_RUN failed\n");
}

TEST(RateLimitedLogTest, ABurstPerWindowThenTheCountOfWhatWasDropped) {
  absl::Time now = absl::FromUnixSeconds(1000);
  RateLimitedLog log(/*burst=*/2, absl::Seconds(10), [&] { return now; });
  CaptureStderr capture;
  for (int i = 0; i < 5; ++i) log.Warning("bar ", i);  // 2 written, 3 dropped.
  now += absl::Seconds(9);
  log.Warning("still the same window");  // Dropped: 4.
  now += absl::Seconds(1);
  log.Warning("bar ", 9);
  log.Warning("bar ", 10);
  log.Warning("bar ", 11);  // Dropped: 1, reported by nobody yet.
  EXPECT_EQ(capture.Finish(),
            "vmmkit warning: bar 0\n"
            "vmmkit warning: bar 1\n"
            "vmmkit warning: bar 9 (4 more like this dropped)\n"
            "vmmkit warning: bar 10\n");
}

TEST(RateLimitedLogTest, AdmitCountsWhatItRefusesAndIsSafeAcrossThreads) {
  absl::Time now = absl::FromUnixSeconds(0);
  std::mutex now_mu;
  RateLimitedLog log(/*burst=*/1, absl::Seconds(1), [&] {
    std::lock_guard<std::mutex> l(now_mu);
    return now;
  });
  uint64_t dropped = 7;
  ASSERT_TRUE(log.Admit(&dropped));
  EXPECT_EQ(dropped, 0u);
  std::vector<std::thread> guests;
  for (int t = 0; t < 4; ++t) {
    guests.emplace_back([&] {
      uint64_t d = 0;
      for (int i = 0; i < 25; ++i) EXPECT_FALSE(log.Admit(&d));
    });
  }
  for (auto& t : guests) t.join();
  {
    std::lock_guard<std::mutex> l(now_mu);
    now += absl::Seconds(1);
  }
  ASSERT_TRUE(log.Admit(&dropped));
  EXPECT_EQ(dropped, 100u);
}

}  // namespace
}  // namespace vmmkit
