#include "base/step_timer.h"

#include <time.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace vmmkit {

StepTimer::StepTimer() : start_(absl::Now()), last_(start_), last_cpu_(ThreadCpu()) {}

void StepTimer::Step(absl::string_view name) {
  const absl::Time now = absl::Now();
  const absl::Duration cpu = ThreadCpu();
  const int64_t wall_ms = absl::ToInt64Milliseconds(now - last_);
  const int64_t cpu_ms = absl::ToInt64Milliseconds(cpu - last_cpu_);
  steps_.push_back(
      absl::StrCat(name, " ", wall_ms, " ms",
                   wall_ms > cpu_ms + 2 ? absl::StrCat(" (", cpu_ms, " ms CPU)") : ""));
  last_ = now;
  last_cpu_ = cpu;
}

std::string StepTimer::Summary() const {
  return absl::StrCat(absl::ToInt64Milliseconds(absl::Now() - start_), " ms (",
                      absl::StrJoin(steps_, ", "), ")");
}

absl::Duration StepTimer::ThreadCpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return absl::DurationFromTimespec(ts);
}

}  // namespace vmmkit
