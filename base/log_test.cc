#include "base/log.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

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

}  // namespace
}  // namespace vmmkit
