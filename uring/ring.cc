#include "uring/ring.h"

#include <liburing.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::uring {
namespace {

// The status for io_uring_setup's failure: what a user must change is the kernel or its policy.
absl::Status SetupError(int err) {
  switch (err) {
    case ENOSYS:
      return absl::UnimplementedError("io_uring_setup: this kernel has no io_uring");
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(
          "io_uring_setup: refused (kernel.io_uring_disabled, or a seccomp filter)");
    case EINVAL:
      // IORING_SETUP_R_DISABLED and restrictions came in Linux 5.10.
      return absl::UnimplementedError(
          "io_uring_setup(IORING_SETUP_R_DISABLED): unsupported (needs Linux 5.10)");
    default:
      return ErrnoStatus(err, "io_uring_setup");
  }
}

}  // namespace

absl::StatusOr<Ring> Ring::Create(uint32_t entries, absl::Span<const int> files) {
  if (entries < 1 || entries > 4096 || (entries & (entries - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("io_uring: ", entries, " entries (a power of two from 1 to 4096)"));
  }
  if (files.empty()) return absl::InvalidArgumentError("io_uring: no files to register");
  auto ring = std::make_unique<io_uring>();
  io_uring_params params = {};
  params.flags = IORING_SETUP_R_DISABLED;
  if (const int r = io_uring_queue_init_params(entries, ring.get(), &params); r < 0) {
    return SetupError(-r);
  }
  // From here the destructor tears the ring down.
  Ring result(std::move(ring), entries, static_cast<uint32_t>(files.size()));
  io_uring* r = result.ring_.get();
  if (const int e = io_uring_register_files(r, files.data(), static_cast<unsigned>(files.size()));
      e < 0) {
    return ErrnoStatus(-e, "io_uring_register(IORING_REGISTER_FILES, ", files.size(), ")");
  }
  // Only these operations, only on registered files, and after enabling no registration, only
  // the unregistering of the files (the destructor's).
  io_uring_restriction allowed[6] = {};
  const uint8_t ops[] = {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC};
  for (size_t i = 0; i < 3; ++i) {
    allowed[i].opcode = IORING_RESTRICTION_SQE_OP;
    allowed[i].sqe_op = ops[i];
  }
  allowed[3].opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED;
  allowed[3].sqe_flags = IOSQE_FIXED_FILE;
  allowed[4].opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED;
  allowed[4].sqe_flags = IOSQE_FIXED_FILE;
  allowed[5].opcode = IORING_RESTRICTION_REGISTER_OP;
  allowed[5].register_op = IORING_UNREGISTER_FILES;
  if (const int e = io_uring_register(static_cast<unsigned>(r->ring_fd),
                                      IORING_REGISTER_RESTRICTIONS, allowed, 6);
      e < 0) {
    return ErrnoStatus(-e, "io_uring_register(IORING_REGISTER_RESTRICTIONS)");
  }
  if (const int e = io_uring_register(static_cast<unsigned>(r->ring_fd),
                                      IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
      e < 0) {
    return ErrnoStatus(-e, "io_uring_register(IORING_REGISTER_ENABLE_RINGS)");
  }
  return result;
}

absl::Status Ring::Available() {
  const int fd = ::memfd_create("io_uring probe", MFD_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "memfd_create");
  const absl::Status s = Create(2, {fd}).status();
  ::close(fd);
  return s;
}

Ring::Ring(std::unique_ptr<io_uring> ring, uint32_t entries, uint32_t files)
    : ring_(std::move(ring)), entries_(entries), files_(files) {}

Ring::Ring(Ring&& other) noexcept
    : ring_(std::move(other.ring_)), entries_(other.entries_), files_(other.files_) {}

// The kernel tears a ring down after its fd is closed, in the background, and until then the
// ring's registered files stay open: an image's lock would outlive its DiskImage. Unregistering
// them first drops them at once (the kernel waits for requests in flight on them).
void Ring::Destroy() {
  if (ring_ == nullptr) return;
  (void)io_uring_unregister_files(ring_.get());
  io_uring_queue_exit(ring_.get());
  ring_.reset();
}

Ring& Ring::operator=(Ring&& other) noexcept {
  if (this != &other) {
    Destroy();
    ring_ = std::move(other.ring_);
    entries_ = other.entries_;
    files_ = other.files_;
  }
  return *this;
}

Ring::~Ring() { Destroy(); }

int Ring::fd() const { return ring_->ring_fd; }

absl::StatusOr<io_uring_sqe*> Ring::Next(uint32_t file) {
  if (file >= files_) {
    return absl::InvalidArgumentError(
        absl::StrCat("io_uring: file ", file, " (", files_, " registered)"));
  }
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("io_uring: submission ring full (", entries_, " entries)"));
  }
  return sqe;
}

absl::Status Ring::QueueVector(bool write, uint32_t file, absl::Span<const iovec> iov,
                               uint64_t offset, uint64_t tag) {
  absl::StatusOr<io_uring_sqe*> sqe = Next(file);
  if (!sqe.ok()) return sqe.status();
  (write ? io_uring_prep_writev : io_uring_prep_readv)(*sqe, static_cast<int>(file), iov.data(),
                                                       static_cast<unsigned>(iov.size()), offset);
  (*sqe)->flags |= IOSQE_FIXED_FILE;
  (*sqe)->user_data = tag;
  return absl::OkStatus();
}

absl::Status Ring::QueueFdatasync(uint32_t file, uint64_t tag) {
  absl::StatusOr<io_uring_sqe*> sqe = Next(file);
  if (!sqe.ok()) return sqe.status();
  io_uring_prep_fsync(*sqe, static_cast<int>(file), IORING_FSYNC_DATASYNC);
  (*sqe)->flags |= IOSQE_FIXED_FILE;
  (*sqe)->user_data = tag;
  return absl::OkStatus();
}

absl::Status Ring::Submit() {
  while (true) {
    const int r = io_uring_submit(ring_.get());
    if (r >= 0) return absl::OkStatus();
    if (r != -EINTR) return ErrnoStatus(-r, "io_uring_enter(submit)");
  }
}

absl::Status Ring::WaitOne() {
  while (true) {
    io_uring_cqe* cqe = nullptr;
    const int r = io_uring_wait_cqe(ring_.get(), &cqe);
    if (r == 0) return absl::OkStatus();
    if (r != -EINTR) return ErrnoStatus(-r, "io_uring_enter(wait)");
  }
}

uint32_t Ring::Reap(absl::FunctionRef<void(uint64_t tag, int32_t result)> done) {
  uint32_t n = 0;
  io_uring_cqe* cqe = nullptr;
  while (io_uring_peek_cqe(ring_.get(), &cqe) == 0 && cqe != nullptr) {
    const uint64_t tag = cqe->user_data;
    const int32_t result = cqe->res;
    io_uring_cqe_seen(ring_.get(), cqe);
    done(tag, result);
    ++n;
  }
  return n;
}

}  // namespace vmmkit::uring
