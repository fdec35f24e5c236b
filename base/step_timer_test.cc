#include "base/step_timer.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::MatchesRegex;

TEST(StepTimerTest, SummaryNamesEachStepAndTheTotal) {
  StepTimer timer;
  timer.Step("open");
  absl::SleepFor(absl::Milliseconds(20));  // Sleeps: wall time without CPU time.
  timer.Step("wait");
  // The CPU time shows where a step's wall time exceeds it; "open" may, on a busy machine.
  EXPECT_THAT(timer.Summary(),
              MatchesRegex("[0-9]+ ms \\(open [0-9]+ ms( \\([0-9]+ ms CPU\\))?, wait [0-9]+ ms "
                           "\\([0-9]+ ms CPU\\)\\)"));
}

TEST(StepTimerTest, NoStepsIsJustTheTotal) {
  EXPECT_THAT(StepTimer().Summary(), MatchesRegex("[0-9]+ ms \\(\\)"));
}

}  // namespace
}  // namespace vmmkit
