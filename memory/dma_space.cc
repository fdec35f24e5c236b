#include "memory/dma_space.h"

#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace vmmkit {
namespace {

absl::Status Dma(const char* op, Iova iova, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(
      s.code(), absl::StrCat("DMA ", op, " at bus address ", iova.ToString(), ": ", s.message()));
}

// The bounce buffer of the default ReadFromFd/WriteToFd: memory stays bounded whatever the length.
constexpr size_t kBounce = 64 << 10;

const char* FileOp(bool read) { return read ? "pread" : "pwrite"; }

// All of `iov` from or to `fd` at `offset`, in calls of at most IOV_MAX vectors, retrying short
// transfers. Consumes `iov`.
absl::Status FileIo(bool read, int fd, uint64_t offset, std::vector<iovec>& iov) {
  size_t first = 0;
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    const off_t at = static_cast<off_t>(offset);
    const ssize_t r = read ? ::preadv(fd, iov.data() + first, count, at)
                           : ::pwritev(fd, iov.data() + first, count, at);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoStatus(errno, FileOp(read), " at ", offset);
    if (r == 0)
      return absl::OutOfRangeError(absl::StrCat(FileOp(read), " at ", offset, ": end of file"));
    offset += static_cast<uint64_t>(r);
    for (size_t n = static_cast<size_t>(r); n > 0;) {
      iovec& v = iov[first];
      const size_t step = std::min(n, v.iov_len);
      v.iov_base = static_cast<uint8_t*>(v.iov_base) + step;
      v.iov_len -= step;
      n -= step;
      if (v.iov_len == 0) ++first;
    }
    while (first < iov.size() && iov[first].iov_len == 0) ++first;
  }
  return absl::OkStatus();
}

absl::Status FileIo(bool read, int fd, uint64_t offset, uint8_t* data, uint64_t len) {
  std::vector<iovec> iov = {{data, static_cast<size_t>(len)}};
  return FileIo(read, fd, offset, iov);
}

// The default: range by range, chunk by chunk, through a bounce buffer.
absl::Status Bounce(const DmaSpace& dma, bool read, int fd, uint64_t offset,
                    absl::Span<const DmaRange> ranges) {
  uint64_t largest = 0;
  for (const DmaRange& r : ranges) largest = std::max(largest, r.len);
  std::vector<uint8_t> bounce(static_cast<size_t>(std::min<uint64_t>(largest, kBounce)));
  for (const DmaRange& r : ranges) {
    for (uint64_t done = 0; done < r.len;) {
      const absl::Span<uint8_t> chunk(
          bounce.data(), static_cast<size_t>(std::min<uint64_t>(r.len - done, kBounce)));
      const Iova at(r.iova.raw() + done);
      absl::Status s =
          read ? FileIo(true, fd, offset, chunk.data(), chunk.size()) : dma.Read(at, chunk);
      if (s.ok()) {
        s = read ? dma.Write(at, chunk) : FileIo(false, fd, offset, chunk.data(), chunk.size());
      }
      if (!s.ok()) return s;
      done += chunk.size();
      offset += chunk.size();
    }
  }
  return absl::OkStatus();
}

// Host iovecs for `ranges` in guest RAM, or nullopt if one of them is not in a single region.
std::optional<std::vector<iovec>> HostRanges(const GuestMemory& memory,
                                             absl::Span<const DmaRange> ranges) {
  std::vector<iovec> iov;
  iov.reserve(ranges.size());
  for (const DmaRange& r : ranges) {
    if (r.len == 0) continue;
    absl::StatusOr<uint8_t*> host = memory.Translate(GuestAddress(r.iova.raw()), r.len);
    if (!host.ok()) return std::nullopt;
    iov.push_back({*host, static_cast<size_t>(r.len)});
  }
  return iov;
}

}  // namespace

absl::Status DmaSpace::ReadFromFd(int fd, uint64_t offset,
                                  absl::Span<const DmaRange> ranges) const {
  return Bounce(*this, true, fd, offset, ranges);
}

absl::Status DmaSpace::WriteToFd(int fd, uint64_t offset, absl::Span<const DmaRange> ranges) const {
  return Bounce(*this, false, fd, offset, ranges);
}

bool DmaSpace::HostIovecs(absl::Span<const DmaRange>, std::vector<iovec>&) const { return false; }

bool IdentityDmaSpace::HostIovecs(absl::Span<const DmaRange> ranges,
                                  std::vector<iovec>& iov) const {
  std::optional<std::vector<iovec>> host = HostRanges(memory_, ranges);
  if (!host) return false;
  iov = *std::move(host);
  return true;
}

absl::Status IdentityDmaSpace::ReadFromFd(int fd, uint64_t offset,
                                          absl::Span<const DmaRange> ranges) const {
  std::optional<std::vector<iovec>> iov = HostRanges(memory_, ranges);
  // A range across two regions or outside RAM: the general path (which refuses the latter).
  if (!iov) return DmaSpace::ReadFromFd(fd, offset, ranges);
  return FileIo(true, fd, offset, *iov);
}

absl::Status IdentityDmaSpace::WriteToFd(int fd, uint64_t offset,
                                         absl::Span<const DmaRange> ranges) const {
  std::optional<std::vector<iovec>> iov = HostRanges(memory_, ranges);
  if (!iov) return DmaSpace::WriteToFd(fd, offset, ranges);
  return FileIo(false, fd, offset, *iov);
}

absl::Status IdentityDmaSpace::Read(Iova iova, absl::Span<uint8_t> dst) const {
  return Dma("read", iova, memory_.Read(GuestAddress(iova.raw()), dst));
}

absl::Status IdentityDmaSpace::Write(Iova iova, absl::Span<const uint8_t> src) const {
  return Dma("write", iova, memory_.Write(GuestAddress(iova.raw()), src));
}

}  // namespace vmmkit
