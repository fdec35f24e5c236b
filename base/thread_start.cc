#include "base/thread_start.h"

#include <pthread.h>

#include <atomic>

#include "base/status.h"

namespace vmmkit {
namespace {
std::atomic<ThreadStartHook> g_hook{nullptr};
}  // namespace

void SetThreadStartHook(ThreadStartHook hook) { g_hook.store(hook, std::memory_order_release); }

void ThreadStarted(absl::string_view kind) {
  if (ThreadStartHook hook = g_hook.load(std::memory_order_acquire); hook != nullptr) hook(kind);
}

absl::Status SetDefaultThreadStackSize(size_t bytes) {
  pthread_attr_t attr;
  if (int err = ::pthread_getattr_default_np(&attr); err != 0) {
    return ErrnoStatus(err, "pthread_getattr_default_np");
  }
  int err = ::pthread_attr_setstacksize(&attr, bytes);
  if (err == 0) err = ::pthread_setattr_default_np(&attr);
  ::pthread_attr_destroy(&attr);
  if (err != 0) return ErrnoStatus(err, "default thread stack size ", bytes, " bytes");
  return absl::OkStatus();
}

}  // namespace vmmkit
