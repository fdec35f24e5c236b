#include "base/thread_start.h"

#include <pthread.h>

#include <string>
#include <thread>
#include <vector>

#include "base/status_matchers.h"
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

// The stack size a new std::thread gets.
size_t NewThreadStackSize() {
  size_t size = 0;
  std::thread([&] {
    pthread_attr_t attr;
    ASSERT_EQ(::pthread_getattr_np(::pthread_self(), &attr), 0);
    ASSERT_EQ(::pthread_attr_getstacksize(&attr, &size), 0);
    ::pthread_attr_destroy(&attr);
  }).join();
  return size;
}

TEST(ThreadStackTest, NewThreadsGetTheDefaultSize) {
  const size_t before = NewThreadStackSize();
  // glibc reuses a cached stack up to 4 times the size asked for: each size here is more than
  // 4 times below every stack an earlier thread of this test left (8 MiB, RLIMIT_STACK's).
  ASSERT_OK(SetDefaultThreadStackSize(size_t{256} << 10));
  EXPECT_EQ(NewThreadStackSize(), size_t{256} << 10);
  ASSERT_OK(SetDefaultThreadStackSize(size_t{1} << 20));
  EXPECT_EQ(NewThreadStackSize(), size_t{1} << 20);
  ASSERT_OK(SetDefaultThreadStackSize(before));
  EXPECT_EQ(NewThreadStackSize(), before);
}

TEST(ThreadStackTest, BelowTheMinimumIsRefused) {
  const size_t before = NewThreadStackSize();
  absl::Status s = SetDefaultThreadStackSize(1024);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("default thread stack size 1024 bytes"), std::string::npos) << s;
  EXPECT_EQ(NewThreadStackSize(), before);
}

}  // namespace
}  // namespace vmmkit
