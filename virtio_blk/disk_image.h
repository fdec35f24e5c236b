// File: virtio_blk/disk_image.h
// -----------------------------------------------------------------------------
// DiskImage is a raw disk image file, opened for one VM: read-write with an exclusive lock, or
// read-only with a shared one (flock, so a second vmm cannot write an image another one uses,
// and qemu-img and friends see it taken), with one method per operation a virtio-blk request
// needs. Offsets and lengths are the caller's to check against capacity() (ParseRequest does);
// here they are checked again, and anything outside the image is OUT_OF_RANGE.
//
//   ASSIGN_OR_RETURN(DiskImage disk, DiskImage::Open("/var/lib/vm/root.img", {.read_only =
//   false})); RETURN_IF_ERROR(disk.Read(sector * 512, buffer)); RETURN_IF_ERROR(disk.Flush());   //
//   fdatasync: what was written is on the host's storage
//
// Thread-safety: every method may run on any thread at once (pread/pwrite at explicit offsets).

#ifndef VMMKIT_VIRTIO_BLK_DISK_IMAGE_H_
#define VMMKIT_VIRTIO_BLK_DISK_IMAGE_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/scoped_fd.h"
#include "memory/address.h"
#include "memory/dma_space.h"

namespace vmmkit::virtio_blk {

struct DiskOptions {
  bool read_only = false;
};

class DiskImage {
 public:
  // FAILED_PRECONDITION if another process holds a conflicting lock (the message says so); the
  // open's errno otherwise (NOT_FOUND, PERMISSION_DENIED, ...). The size is rounded down to whole
  // 512-byte sectors; an image smaller than one sector is INVALID_ARGUMENT.
  static absl::StatusOr<DiskImage> Open(const std::string& path, const DiskOptions& options);

  const std::string& path() const { return path_; }
  bool read_only() const { return read_only_; }
  uint64_t capacity() const { return size_ / 512; }  // In sectors.
  uint64_t size() const { return size_; }

  // pread/pwrite of the whole span at `offset` (short transfers are retried).
  absl::Status Read(uint64_t offset, absl::Span<uint8_t> data) const;
  absl::Status Write(uint64_t offset, absl::Span<const uint8_t> data) const;
  // The same between the image from `offset` on and DMA memory (`ranges` laid end to end), with
  // one preadv/pwritev on guest memory where `dma` can name it (DmaSpace::ReadFromFd): a
  // request's data is never copied. Unlike Read, ReadTo fails (OUT_OF_RANGE) where the file
  // shrank under the VM.
  absl::Status ReadTo(const DmaSpace& dma, absl::Span<const DmaRange> ranges,
                      uint64_t offset) const;
  absl::Status WriteFrom(const DmaSpace& dma, absl::Span<const DmaRange> ranges,
                         uint64_t offset) const;
  // fdatasync.
  absl::Status Flush() const;
  // Deallocates [offset, offset + length) (FALLOC_FL_PUNCH_HOLE): reads as zeros afterwards.
  // UNIMPLEMENTED where the file system cannot punch holes.
  absl::Status Discard(uint64_t offset, uint64_t length) const;
  // Zeros [offset, offset + length): FALLOC_FL_ZERO_RANGE, or (without it) writes of zeros.
  absl::Status WriteZeroes(uint64_t offset, uint64_t length) const;

  // Whether operation `op` ("read", "write", ...) may touch [offset, offset + length): OK, or
  // OUT_OF_RANGE past the end, or PERMISSION_DENIED for anything but a read of a read-only
  // image. Every method above checks it; a caller that does I/O on fd() itself must.
  absl::Status CheckRange(const char* op, uint64_t offset, uint64_t length) const;
  // The open image, for I/O that the kernel does asynchronously (an io_uring registers it). The
  // DiskImage keeps it.
  int fd() const { return fd_.get(); }

 private:
  DiskImage(std::string path, ScopedFd fd, uint64_t size, bool read_only)
      : path_(std::move(path)), fd_(std::move(fd)), size_(size), read_only_(read_only) {}

  std::string path_;
  ScopedFd fd_;
  uint64_t size_;
  bool read_only_;
};

}  // namespace vmmkit::virtio_blk

#endif  // VMMKIT_VIRTIO_BLK_DISK_IMAGE_H_
