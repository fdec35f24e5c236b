// File: uring/ring.h
// -----------------------------------------------------------------------------
// Ring is one io_uring instance: its kernel fd and the submission and completion rings it shares
// with the kernel. A Ring is confined when it is made: it may only read, write and fdatasync the
// files registered with it (every request names one by index, IOSQE_FIXED_FILE), and the kernel
// refuses any other operation, flag or later registration (IORING_REGISTER_RESTRICTIONS on a
// ring created disabled, then enabled; only unregistering the files stays allowed). A ring's
// operations are not system calls, so a thread's seccomp filter never sees them; a ring that could
// open or connect would be a way around it.
//
//   ASSIGN_OR_RETURN(uring::Ring ring, uring::Ring::Create(256, {image_fd}));
//   RETURN_IF_ERROR(ring.QueueReadv(/*file=*/0, iov, offset, /*tag=*/7));
//   RETURN_IF_ERROR(ring.Submit());
//   ring.Reap([](uint64_t tag, int32_t result) { /* bytes, or -errno */ });
//
// Requests complete in any order. Needs Linux 5.10 (restrictions); Create says so where the
// kernel lacks io_uring or refuses it (UNIMPLEMENTED, PERMISSION_DENIED).
//
// Thread-safety: none; one thread uses a ring at a time.

#ifndef VMMKIT_URING_RING_H_
#define VMMKIT_URING_RING_H_

#include <sys/uio.h>

#include <cstdint>
#include <memory>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

struct io_uring;
struct io_uring_sqe;

namespace vmmkit::uring {

class Ring {
 public:
  // A ring for up to `entries` requests queued at once (a power of two, 1 to 4096; the
  // completion ring holds twice as many, so completions of `entries` requests in flight always
  // fit), on `files` (borrowed: each must stay open as long as the ring).
  static absl::StatusOr<Ring> Create(uint32_t entries, absl::Span<const int> files);
  // OK where this kernel lets this process make such a ring; Create's error where it does not
  // (for choosing an engine up front, and for tests that must say skipped).
  static absl::Status Available();

  Ring(Ring&&) noexcept;
  Ring& operator=(Ring&&) noexcept;
  // Returns once the ring holds none of its files any more.
  ~Ring();

  // Readable (POLLIN) while completions wait to be reaped.
  int fd() const;
  uint32_t entries() const { return entries_; }

  // Queues one request on registered file `file` (an index into Create's files), to be handed
  // to the kernel by Submit. `iov` must stay valid until the request completes. RESOURCE_EXHAUSTED
  // when the submission ring is full; INVALID_ARGUMENT for a file index out of range.
  absl::Status QueueReadv(uint32_t file, absl::Span<const iovec> iov, uint64_t offset,
                          uint64_t tag) {
    return QueueVector(false, file, iov, offset, tag);
  }
  absl::Status QueueWritev(uint32_t file, absl::Span<const iovec> iov, uint64_t offset,
                           uint64_t tag) {
    return QueueVector(true, file, iov, offset, tag);
  }
  absl::Status QueueFdatasync(uint32_t file, uint64_t tag);

  // io_uring_enter: hands the kernel what is queued. Reads served from the page cache usually
  // complete before it returns.
  absl::Status Submit();
  // Blocks until at least one completion waits (returns at once if one does).
  absl::Status WaitOne();
  // Calls `done(tag, result)` for each waiting completion (result: bytes moved, or -errno);
  // returns how many.
  uint32_t Reap(absl::FunctionRef<void(uint64_t tag, int32_t result)> done);

 private:
  Ring(std::unique_ptr<::io_uring> ring, uint32_t entries, uint32_t files);
  absl::StatusOr<::io_uring_sqe*> Next(uint32_t file);
  void Destroy();
  absl::Status QueueVector(bool write, uint32_t file, absl::Span<const iovec> iov, uint64_t offset,
                           uint64_t tag);

  std::unique_ptr<::io_uring> ring_;  // Null once moved from.
  uint32_t entries_ = 0;
  uint32_t files_ = 0;
};

}  // namespace vmmkit::uring

#endif  // VMMKIT_URING_RING_H_
