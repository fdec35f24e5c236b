#include "base/log.h"

#include <unistd.h>

#include <string>

namespace vmmkit {

void LogLine(LogLevel level, absl::string_view message) {
  const char* name = level == LogLevel::kInfo      ? "info"
                     : level == LogLevel::kWarning ? "warning"
                                                   : "error";
  std::string line = absl::StrCat("vmmkit ", name, ": ", message, "\n");
  // One write per line so that lines from vCPU and I/O threads never interleave mid-line.
  ssize_t unused = ::write(STDERR_FILENO, line.data(), line.size());
  (void)unused;  // Nowhere left to report a failed write to stderr.
}

bool RateLimitedLog::Admit(uint64_t* dropped) {
  const absl::Time now = now_();
  MutexLock lock(mu_);
  if (now - window_start_ >= window_) {
    window_start_ = now;
    used_ = 0;
  }
  if (used_ >= burst_) {
    ++dropped_;
    return false;
  }
  ++used_;
  *dropped = dropped_;
  dropped_ = 0;
  return true;
}

}  // namespace vmmkit
