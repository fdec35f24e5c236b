#include "virtio_blk/disk_image.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit::virtio_blk {

absl::StatusOr<DiskImage> DiskImage::Open(const std::string& path, const DiskOptions& options) {
  ScopedFd fd(::open(path.c_str(), (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!fd.valid()) return ErrnoStatus(errno, "disk ", path, ": open");
  // A writer excludes everyone; readers share.
  if (::flock(fd.get(), (options.read_only ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrCat("disk ", path, ": locked by another process (",
                       options.read_only ? "a writer" : "another user", " has it open)"));
    }
    return ErrnoStatus(errno, "disk ", path, ": flock");
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "disk ", path, ": fstat");
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("disk ", path, ": not a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size) / 512 * 512;
  if (size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("disk ", path, ": ", st.st_size, " bytes, less than one 512-byte sector"));
  }
  return DiskImage(path, std::move(fd), size, options.read_only);
}

absl::Status DiskImage::CheckRange(const char* op, uint64_t offset, uint64_t length) const {
  if (offset > size_ || length > size_ - offset) {
    return absl::OutOfRangeError(absl::StrCat("disk ", path_, ": ", op, " of ", length,
                                              " bytes at ", offset, " is past its end (", size_,
                                              " bytes)"));
  }
  if (read_only_ && std::string_view(op) != "read") {
    return absl::PermissionDeniedError(
        absl::StrCat("disk ", path_, ": ", op, " on a read-only disk"));
  }
  return absl::OkStatus();
}

absl::Status DiskImage::Read(uint64_t offset, absl::Span<uint8_t> data) const {
  if (absl::Status s = CheckRange("read", offset, data.size()); !s.ok()) return s;
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pread(fd_.get(), data.data() + done, data.size() - done,
                              static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "disk ", path_, ": pread at ", offset + done);
    if (n == 0) {
      // The file shrank under the VM: what is gone reads as zeros.
      std::fill(data.begin() + static_cast<ptrdiff_t>(done), data.end(), 0);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status DiskImage::Write(uint64_t offset, absl::Span<const uint8_t> data) const {
  if (absl::Status s = CheckRange("write", offset, data.size()); !s.ok()) return s;
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::pwrite(fd_.get(), data.data() + done, data.size() - done,
                               static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, "disk ", path_, ": pwrite at ", offset + done);
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

namespace {

uint64_t TotalLength(absl::Span<const DmaRange> ranges) {
  uint64_t total = 0;
  for (const DmaRange& r : ranges) {
    // Saturates: a sum past 2^64 is past any image's end.
    total = r.len > ~uint64_t{0} - total ? ~uint64_t{0} : total + r.len;
  }
  return total;
}

}  // namespace

absl::Status DiskImage::ReadTo(const DmaSpace& dma, absl::Span<const DmaRange> ranges,
                               uint64_t offset) const {
  if (absl::Status s = CheckRange("read", offset, TotalLength(ranges)); !s.ok()) return s;
  return Prefixed(dma.ReadFromFd(fd_.get(), offset, ranges), "disk ", path_);
}

absl::Status DiskImage::WriteFrom(const DmaSpace& dma, absl::Span<const DmaRange> ranges,
                                  uint64_t offset) const {
  if (absl::Status s = CheckRange("write", offset, TotalLength(ranges)); !s.ok()) return s;
  return Prefixed(dma.WriteToFd(fd_.get(), offset, ranges), "disk ", path_);
}

absl::Status DiskImage::Flush() const {
  if (read_only_) return absl::OkStatus();
  if (::fdatasync(fd_.get()) != 0) return ErrnoStatus(errno, "disk ", path_, ": fdatasync");
  return absl::OkStatus();
}

absl::Status DiskImage::Discard(uint64_t offset, uint64_t length) const {
  if (absl::Status s = CheckRange("discard", offset, length); !s.ok()) return s;
  if (length == 0) return absl::OkStatus();
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) != 0) {
    if (errno == EOPNOTSUPP) {
      return absl::UnimplementedError(
          absl::StrCat("disk ", path_, ": its file system cannot punch holes"));
    }
    return ErrnoStatus(errno, "disk ", path_, ": punch hole at ", offset);
  }
  return absl::OkStatus();
}

absl::Status DiskImage::WriteZeroes(uint64_t offset, uint64_t length) const {
  if (absl::Status s = CheckRange("write-zeroes", offset, length); !s.ok()) return s;
  if (length == 0) return absl::OkStatus();
  if (::fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(length)) == 0) {
    return absl::OkStatus();
  }
  if (errno != EOPNOTSUPP) return ErrnoStatus(errno, "disk ", path_, ": zero range at ", offset);
  // No ZERO_RANGE here: write zeros, 64 KiB at a time.
  static const std::vector<uint8_t> kZeros(64 << 10, 0);
  for (uint64_t done = 0; done < length;) {
    const uint64_t n = std::min<uint64_t>(kZeros.size(), length - done);
    if (absl::Status s = Write(offset + done, absl::MakeConstSpan(kZeros.data(), n)); !s.ok()) {
      return s;
    }
    done += n;
  }
  return absl::OkStatus();
}

}  // namespace vmmkit::virtio_blk
