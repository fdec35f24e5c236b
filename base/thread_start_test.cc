#include "base/thread_start.h"

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace vmmkit {
namespace {

std::vector<std::string>* g_seen = nullptr;

TEST(ThreadStartTest, WithoutHookNothingHappens) {
  SetThreadStartHook(nullptr);
  ThreadStarted("vcpu0");  // Must not crash.
}

TEST(ThreadStartTest, HookSeesEachKindOnItsThread) {
  std::vector<std::string> seen;
  g_seen = &seen;
  SetThreadStartHook([](absl::string_view kind) { g_seen->emplace_back(kind); });
  std::thread([] { ThreadStarted("ioapic-lines"); }).join();
  std::thread([] { ThreadStarted("vcpu"); }).join();
  SetThreadStartHook(nullptr);
  ThreadStarted("after");
  EXPECT_EQ(seen, (std::vector<std::string>{"ioapic-lines", "vcpu"}));
  g_seen = nullptr;
}

}  // namespace
}  // namespace vmmkit
