// File: vfio/internal/cap_chain.h
// -----------------------------------------------------------------------------
// VFIO info ioctls (IOMMU info, region info) append a chain of capabilities to their struct. The
// chain comes from the kernel, but a wrong walk is a buffer overrun, so it is walked defensively:
// every header and payload must lie inside the buffer and offsets must increase (no loops).

#ifndef VMMKIT_VFIO_INTERNAL_CAP_CHAIN_H_
#define VMMKIT_VFIO_INTERNAL_CAP_CHAIN_H_

#include <linux/vfio.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "vfio/syscalls.h"

namespace vmmkit::vfio::internal {

// Calls visit(id, offset) for each capability in `buf` (the whole info buffer, `size` bytes),
// starting at `first` (0: none). `what` names the ioctl in errors.
inline absl::Status WalkCapChain(
    const uint8_t* buf, size_t size, size_t first, const std::string& what,
    const std::function<absl::Status(uint16_t id, size_t off)>& visit) {
  size_t last = 0;
  for (size_t off = first; off != 0;) {
    if (off <= last || off > size || size - off < sizeof(vfio_info_cap_header)) {
      return absl::InternalError(
          absl::StrCat(what, ": malformed capability chain: capability at offset ", off));
    }
    vfio_info_cap_header hdr;
    std::memcpy(&hdr, buf + off, sizeof(hdr));
    if (absl::Status s = visit(hdr.id, off); !s.ok()) return s;
    last = off;
    off = hdr.next;
  }
  return absl::OkStatus();
}

// Copies a T at `off`, or fails if it does not fit in the buffer.
template <typename T>
absl::Status ReadCap(const uint8_t* buf, size_t size, size_t off, const std::string& what, T* out) {
  if (off > size || size - off < sizeof(T)) {
    return absl::InternalError(absl::StrCat(what, ": malformed capability chain: truncated ",
                                            "capability at offset ", off));
  }
  std::memcpy(out, buf + off, sizeof(T));
  return absl::OkStatus();
}

// An info ioctl whose struct T (argsz first) may be followed by capabilities: asks once with
// sizeof(T), then again with the argsz the kernel asked for. `in` carries the input fields (e.g. a
// region index). Returns the buffer (8-byte aligned) holding T and its capabilities.
template <typename T>
absl::StatusOr<std::vector<uint64_t>> GetInfoWithCaps(VfioSyscalls& sys, int fd,
                                                      unsigned long request, const T& in,
                                                      const std::string& what) {
  constexpr uint32_t kMaxArgsz = 1 << 20;  // Far beyond any real capability chain.
  uint32_t argsz = sizeof(T);
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::vector<uint64_t> buf((argsz + 7) / 8);
    std::memcpy(buf.data(), &in, sizeof(T));
    const auto asked = static_cast<uint32_t>(buf.size() * 8);
    std::memcpy(buf.data(), &asked, sizeof(asked));  // argsz is the first field.
    const int ret = sys.Ioctl(fd, request, reinterpret_cast<uintptr_t>(buf.data()));
    if (ret < 0) return ErrnoStatus(-ret, what);
    uint32_t wanted;
    std::memcpy(&wanted, buf.data(), sizeof(wanted));
    if (wanted <= asked) return buf;
    if (wanted > kMaxArgsz) {
      return absl::InternalError(absl::StrCat(what, ": the kernel asked for argsz=", wanted));
    }
    argsz = wanted;
  }
  return absl::InternalError(absl::StrCat(what, ": argsz kept growing"));
}

}  // namespace vmmkit::vfio::internal

#endif  // VMMKIT_VFIO_INTERNAL_CAP_CHAIN_H_
