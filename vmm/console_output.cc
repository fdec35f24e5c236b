#include "vmm/console_output.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/status.h"

namespace vmmkit::vmm {

absl::StatusOr<std::unique_ptr<ConsoleOutput>> ConsoleOutput::Create(ScopedFd fd, size_t capacity) {
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "fstat (console output)");
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    const std::string path = absl::StrCat("/proc/self/fd/", fd.get());
    ScopedFd own(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (own.valid()) {
      fd = std::move(own);
    } else if (::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK) != 0) {
      // A socket cannot be opened anew: its one description becomes non-blocking.
      return ErrnoStatus(errno, "fcntl F_SETFL O_NONBLOCK (console output)");
    }
  }
  // A semaphore-free, non-blocking counter: the loop reads it to zero on every Flush.
  absl::StatusOr<EventFd> ready = EventFd::Create();
  if (!ready.ok()) return ready.status();
  return std::unique_ptr<ConsoleOutput>(
      new ConsoleOutput(std::move(fd), capacity, *std::move(ready)));
}

void ConsoleOutput::Write(absl::Span<const uint8_t> bytes) {
  bool was_empty;
  {
    MutexLock lock(mu_);
    if (closed_) {
      dropped_ += bytes.size();
      return;
    }
    was_empty = buffer_.empty();
    const size_t fits = std::min(bytes.size(), capacity_ - buffer_.size());
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(fits));
    dropped_ += bytes.size() - fits;
  }
  if (was_empty) (void)ready_.Write(1);
}

bool ConsoleOutput::Flush() {
  (void)ready_.Read();  // Cleared before taking the bytes: a Write after this wakes the loop.
  uint8_t chunk[4096];
  for (;;) {
    size_t n;
    {
      MutexLock lock(mu_);
      if (buffer_.empty()) return false;
      n = std::min(buffer_.size(), sizeof(chunk));
      std::copy(buffer_.begin(), buffer_.begin() + static_cast<ptrdiff_t>(n), chunk);
    }
    // Outside the lock: a vCPU's Write never waits for this write.
    const ssize_t w = ::write(fd_.get(), chunk, n);
    const int error = errno;
    MutexLock lock(mu_);
    if (w < 0 && error == EINTR) continue;
    if (w < 0 && error == EAGAIN) return true;
    if (w <= 0) {
      // EPIPE (the reader is gone) or a failing file: the guest runs on without a console.
      LogWarning("vmm: console output stopped: ", w < 0 ? std::strerror(error) : "wrote nothing");
      closed_ = true;
      dropped_ += buffer_.size();
      buffer_.clear();
      return false;
    }
    buffer_.erase(buffer_.begin(), buffer_.begin() + w);
    written_ += static_cast<uint64_t>(w);
  }
}

void ConsoleOutput::Drain(absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  while (Flush()) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    pollfd p{.fd = fd_.get(), .events = POLLOUT, .revents = 0};
    (void)::poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
  }
  MutexLock lock(mu_);
  dropped_ += buffer_.size();
  buffer_.clear();
}

uint64_t ConsoleOutput::written() const {
  MutexLock lock(mu_);
  return written_;
}

uint64_t ConsoleOutput::dropped() const {
  MutexLock lock(mu_);
  return dropped_;
}

}  // namespace vmmkit::vmm
