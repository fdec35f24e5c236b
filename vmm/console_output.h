// File: vmm/console_output.h
// -----------------------------------------------------------------------------
// ConsoleOutput carries what the guest writes to its console to the host (stdout or a file)
// without ever making a vCPU wait for the host: vCPU threads append to a bounded buffer, and the
// event loop writes it out with non-blocking writes. When the reader does not keep up, what does
// not fit is dropped and counted; a reader that goes away (EPIPE) ends the output, not the VM.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<ConsoleOutput> out, ConsoleOutput::Create(std::move(fd)));
//   RETURN_IF_ERROR(loop.Watch(out->ready_fd(), [&] { out->Flush(); }));
//   out->Write(bytes);   // vCPU thread: never blocks
//
// Thread-safety: Write from any thread; Flush and Drain from one thread at a time (the loop).

#ifndef VMMKIT_VMM_CONSOLE_OUTPUT_H_
#define VMMKIT_VMM_CONSOLE_OUTPUT_H_

#include <cstdint>
#include <deque>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/event_fd.h"
#include "base/mutex.h"
#include "base/scoped_fd.h"

namespace vmmkit::vmm {

class ConsoleOutput {
 public:
  static constexpr size_t kDefaultCapacity = 64 * 1024;

  // Writes go to `fd` (stdout's duplicate or an opened file). A pipe, terminal or socket gets a
  // non-blocking open file description of its own (through /proc/self/fd), so that the one the
  // process shares with its parent keeps its flags; a regular file, which never makes a writer
  // wait for a reader, is written as it is (keeping its offset shared with stderr's, as in
  // `vmm >log 2>&1`).
  static absl::StatusOr<std::unique_ptr<ConsoleOutput>> Create(ScopedFd fd,
                                                               size_t capacity = kDefaultCapacity);

  // Appends what fits in the buffer and drops the rest. Never blocks on the host.
  void Write(absl::Span<const uint8_t> bytes);

  // Readable while the buffer holds bytes that Flush has not written (the loop watches it).
  int ready_fd() const { return ready_.fd(); }
  // Writes what the host takes now. Returns true if bytes are left (the reader is slow: try again
  // later); then ready_fd() is not readable until more is written, so the caller retries on a
  // timer.
  bool Flush();
  // At exit: flushes, waiting up to `limit` in all for a slow reader; drops what is left.
  void Drain(absl::Duration limit);

  uint64_t written() const;
  uint64_t dropped() const;

 private:
  ConsoleOutput(ScopedFd fd, size_t capacity, EventFd ready)
      : fd_(std::move(fd)), capacity_(capacity), ready_(std::move(ready)) {}

  const ScopedFd fd_;
  const size_t capacity_;
  const EventFd ready_;
  mutable Mutex mu_;
  std::deque<uint8_t> buffer_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;  // The reader went away (or the fd failed).
  uint64_t written_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_CONSOLE_OUTPUT_H_
