#include "base/thread_start.h"

#include <atomic>

namespace vmmkit {
namespace {
std::atomic<ThreadStartHook> g_hook{nullptr};
}  // namespace

void SetThreadStartHook(ThreadStartHook hook) { g_hook.store(hook, std::memory_order_release); }

void ThreadStarted(absl::string_view kind) {
  if (ThreadStartHook hook = g_hook.load(std::memory_order_acquire); hook != nullptr) hook(kind);
}

}  // namespace vmmkit
