// File: base/step_timer.h
// -----------------------------------------------------------------------------
// StepTimer says where a multi-step operation spent its time, for a log line:
// "412 ms (open 90 ms, DMA map 300 ms (2 ms CPU), plug 22 ms)". A step that slept (waiting on the
// kernel or a device) also shows the calling thread's CPU time.
//
//   StepTimer timer;
//   ...; timer.Step("open");
//   ...; timer.Step("DMA map");
//   LogInfo("attached in ", timer.Summary());
//
// Thread-safety: none; one thread times its own steps.

#ifndef VMMKIT_BASE_STEP_TIMER_H_
#define VMMKIT_BASE_STEP_TIMER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace vmmkit {

class StepTimer {
 public:
  StepTimer();
  // Ends a step named `name` (the time since the previous step or the timer's start).
  void Step(absl::string_view name);
  // "TOTAL ms (STEP, STEP, ...)".
  std::string Summary() const;

 private:
  static absl::Duration ThreadCpu();
  absl::Time start_, last_;
  absl::Duration last_cpu_;
  std::vector<std::string> steps_;
};

}  // namespace vmmkit

#endif  // VMMKIT_BASE_STEP_TIMER_H_
