// File: base/process_counts.h
// -----------------------------------------------------------------------------
// What this process holds, as /proc/self sees it: its open file descriptors and its threads. For
// resource reports and leak checks (a count that keeps growing across repeated work).
//
//   const uint64_t fds = OpenFdCount(), threads = ThreadCount();

#ifndef VMMKIT_BASE_PROCESS_COUNTS_H_
#define VMMKIT_BASE_PROCESS_COUNTS_H_

#include <cstdint>

namespace vmmkit {

// Open fds, not counting the one the count itself holds while it reads /proc/self/fd. 0 if
// /proc is not there.
uint64_t OpenFdCount();
// Threads (entries of /proc/self/task).
uint64_t ThreadCount();

}  // namespace vmmkit

#endif  // VMMKIT_BASE_PROCESS_COUNTS_H_
