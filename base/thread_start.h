// File: base/thread_start.h
// -----------------------------------------------------------------------------
// A process-wide hook for the threads vmmkit's libraries start: each such thread calls
// ThreadStarted(kind) first, before it handles any input, so that the program embedding the
// library can confine it (a seccomp filter and Landlock per thread kind: see vmm/confinement.h).
// Without a hook set, ThreadStarted does nothing. Helper threads (Alongside) do not call it:
// they do their creator's work and keep their creator's confinement.
//
//   SetThreadStartHook([](absl::string_view kind) { Confine(kind); });
//   std::thread t([] { ThreadStarted("ioapic-lines"); Work(); });

#ifndef VMMKIT_BASE_THREAD_START_H_
#define VMMKIT_BASE_THREAD_START_H_

#include "absl/strings/string_view.h"

namespace vmmkit {

// Must not return unless the thread may go on: a hook that cannot confine a thread ends the
// process. Set it once, before any thread that calls ThreadStarted exists.
using ThreadStartHook = void (*)(absl::string_view kind);

void SetThreadStartHook(ThreadStartHook hook);
void ThreadStarted(absl::string_view kind);

}  // namespace vmmkit

#endif  // VMMKIT_BASE_THREAD_START_H_
