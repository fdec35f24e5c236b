// File: base/thread_start.h
// -----------------------------------------------------------------------------
// Process-wide settings for threads. A hook for the threads vmmkit's libraries start: each calls
// ThreadStarted(kind) first, before it handles any input, so that the program embedding the
// library can confine it (a seccomp filter and Landlock per thread kind: see vmm/confinement.h).
// Without a hook set, ThreadStarted does nothing. Helper threads (Alongside) do not call it:
// they do their creator's work and keep their creator's confinement.
//
//   SetThreadStartHook([](absl::string_view kind) { Confine(kind); });
//   std::thread t([] { ThreadStarted("ioapic-lines"); Work(); });

#ifndef VMMKIT_BASE_THREAD_START_H_
#define VMMKIT_BASE_THREAD_START_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace vmmkit {

// Must not return unless the thread may go on: a hook that cannot confine a thread ends the
// process. Set it once, before any thread that calls ThreadStarted exists.
using ThreadStartHook = void (*)(absl::string_view kind);

void SetThreadStartHook(ThreadStartHook hook);
void ThreadStarted(absl::string_view kind);

// Makes `bytes` the stack size of every thread started afterwards without an explicit one
// (std::thread, and the pools of libraries such as gRPC), instead of RLIMIT_STACK's. Call it
// before any thread starts. INVALID_ARGUMENT below PTHREAD_STACK_MIN.
//
// Why a program wants it: with transparent huge pages "always", a stack of 2 MiB or more whose
// top lands on a 2 MiB boundary is backed by a huge page at its first touch (2 MiB of RSS for a
// few KiB of stack); a stack under 2 MiB holds no aligned 2 MiB range.
absl::Status SetDefaultThreadStackSize(size_t bytes);

}  // namespace vmmkit

#endif  // VMMKIT_BASE_THREAD_START_H_
