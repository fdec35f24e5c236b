// File: virtio_blk/request.h
// -----------------------------------------------------------------------------
// ParseRequest reads one virtio-blk request from a descriptor chain, as the guest wrote it, and
// says exactly what the device is to do, before any byte of the image is touched. A request is
// a 16-byte header (type, reserved, sector) at the start of the chain's device-readable bytes,
// then its data (device-readable for writes, discard and write-zeroes; device-writable for reads
// and GET_ID), then one status byte: the last device-writable byte.
//
//   ASSIGN_OR_RETURN(Request r, ParseRequest(chain, dma, {.capacity = sectors, .read_only = ro}));
//   if (r.status != kStatusOk) { write r.status at r.status_addr; return the chain; }
//   switch (r.type) { case kTypeIn: read r.data_bytes at r.sector into r.data ... }
//
// The guest's mistakes that still leave a status byte to answer through come back as a Request
// with that status (the device writes it and does nothing else): an unknown type or flag is
// UNSUPP; a write, discard or write-zeroes to a read-only disk, a transfer or range past the end
// of the disk, data that is not whole sectors, a FLUSH with a sector, a GET_ID buffer under 20
// bytes are IOERR. A chain with no status byte, or whose header is short, cannot be answered:
// INVALID_ARGUMENT (the device returns the chain with nothing written).
//
// Thread-safety: a pure function of its arguments (it reads guest memory, which the guest may
// change at any time: what it returns is a copy, checked).

#ifndef VMMKIT_VIRTIO_BLK_REQUEST_H_
#define VMMKIT_VIRTIO_BLK_REQUEST_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "memory/address.h"
#include "memory/dma_space.h"
#include "virtio/queue.h"

namespace vmmkit::virtio_blk {

inline constexpr uint32_t kSectorSize = 512;
// Request types (virtio 1.x, "Device Operation").
inline constexpr uint32_t kTypeIn = 0;
inline constexpr uint32_t kTypeOut = 1;
inline constexpr uint32_t kTypeFlush = 4;
inline constexpr uint32_t kTypeGetId = 8;
inline constexpr uint32_t kTypeDiscard = 11;
inline constexpr uint32_t kTypeWriteZeroes = 13;
// Status bytes.
inline constexpr uint8_t kStatusOk = 0;
inline constexpr uint8_t kStatusIoErr = 1;
inline constexpr uint8_t kStatusUnsupported = 2;
// GET_ID's answer: 20 bytes.
inline constexpr uint32_t kIdBytes = 20;
// A discard / write-zeroes segment's flags: only write-zeroes' UNMAP is defined.
inline constexpr uint32_t kWriteZeroesUnmap = 1;

// A span of guest memory a request's data lies in (part of one descriptor's buffer).
struct Segment {
  Iova addr;
  uint32_t len;
  friend bool operator==(const Segment&, const Segment&) = default;
};

// One range of a discard or write-zeroes request.
struct Range {
  uint64_t sector;
  uint32_t sectors;
  bool unmap;  // Write-zeroes may deallocate.
  friend bool operator==(const Range&, const Range&) = default;
};

struct DiskLimits {
  uint64_t capacity = 0;  // In 512-byte sectors.
  bool read_only = false;
  uint32_t max_ranges = 1;  // Discard / write-zeroes ranges per request (the config's *_seg).
};

struct Request {
  uint32_t type = 0;
  uint8_t status = kStatusOk;  // Anything but OK: write it and do nothing else.
  Iova status_addr;
  uint64_t sector = 0;
  // IN: where the sectors read go; OUT: where the sectors written come from; GET_ID: where the id
  // goes (its first 20 bytes). In order, data_bytes in all.
  std::vector<Segment> data;
  uint64_t data_bytes = 0;
  std::vector<Range> ranges;  // DISCARD and WRITE_ZEROES.
};

absl::StatusOr<Request> ParseRequest(const virtio::DescriptorChain& chain, const DmaSpace& dma,
                                     const DiskLimits& limits);

}  // namespace vmmkit::virtio_blk

#endif  // VMMKIT_VIRTIO_BLK_REQUEST_H_
