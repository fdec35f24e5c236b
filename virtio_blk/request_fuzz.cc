// Fuzzes the virtio-blk request parser with what a hostile driver can hand the device: chains of
// any shape (header split across buffers, data and status sharing a buffer, empty buffers,
// buffers outside guest memory), any header (type, sector) and discard/write-zeroes ranges, on
// disks of any capacity, read-only or not. Checked against the rules: an accepted transfer is
// whole sectors inside the disk, in the right direction, its segments inside the chain's buffers
// of that direction and summing to data_bytes; a write is never accepted on a read-only disk;
// ranges are inside the disk and no more than offered; a refused request carries no data; the
// status byte is the last device-writable byte.
#include <cstdint>
#include <vector>

#include "memory/dma_space.h"
#include "memory/guest_memory.h"
#include "tools/testing/fuzz_input.h"
#include "virtio/queue.h"
#include "virtio/testing/driver_queue.h"
#include "virtio_blk/request.h"

namespace vmmkit::virtio_blk {
namespace {

using fuzzing::Require;

constexpr uint64_t kRam = 64 << 10;

bool Inside(const Segment& s, const std::vector<virtio::Buffer>& buffers) {
  for (const virtio::Buffer& b : buffers) {
    if (s.addr.raw() >= b.addr.raw() && s.addr.raw() - b.addr.raw() <= b.len &&
        s.len <= b.len - (s.addr.raw() - b.addr.raw())) {
      return true;
    }
  }
  return false;
}

void Run(const uint8_t* data, size_t size) {
  static const GuestMemory* memory = new GuestMemory(virtio::testing::TestGuestMemory(kRam));
  IdentityDmaSpace dma(*memory);
  fuzzing::FuzzInput in(data, size);
  // Guest memory: a few words the fuzzer places (headers, ranges).
  for (int i = 0, n = in.Take<uint8_t>() % 8; i < n; ++i) {
    const uint64_t at = in.Take<uint16_t>() & 0xfff8;
    Require(memory->WriteObj(GuestAddress(at), in.Take<uint64_t>()).ok(), "guest write");
  }
  const DiskLimits limits{
      .capacity = in.Take<uint8_t>() < 0xf0 ? in.Take<uint16_t>() : in.Take<uint64_t>(),
      .read_only = (in.Take<uint8_t>() & 1) != 0,
      .max_ranges = in.Take<uint8_t>() % 4u};
  virtio::DescriptorChain chain{.head = 0, .readable = {}, .writable = {}};
  for (int i = 0, n = in.Take<uint8_t>() % 6; i < n; ++i) {
    const uint8_t kind = in.Take<uint8_t>();
    const uint64_t addr = kind < 0xf0 ? in.Take<uint16_t>() : in.Take<uint32_t>();
    const uint32_t len = (kind & 0x40) ? in.Take<uint16_t>() : in.Take<uint8_t>() % 40;
    // SplitQueue's guarantees: readable first, no buffer wraps, each direction within 4 GiB.
    if (kind & 1) {
      chain.writable.push_back({Iova(addr), len});
      chain.writable_bytes += len;
    } else if (chain.writable.empty()) {
      chain.readable.push_back({Iova(addr), len});
      chain.readable_bytes += len;
    }
  }
  absl::StatusOr<Request> r = ParseRequest(chain, dma, limits);
  if (!r.ok()) return;
  // The status byte is the last device-writable byte.
  const virtio::Buffer* last = nullptr;
  for (const virtio::Buffer& b : chain.writable) {
    if (b.len > 0) last = &b;
  }
  Require(last != nullptr && r->status_addr.raw() == last->addr.raw() + last->len - 1,
          "the status byte is not the last writable byte");
  if (r->status != kStatusOk) {
    Require(r->data.empty() && r->data_bytes == 0 && r->ranges.empty(),
            "a refused request carries data");
    return;
  }
  uint64_t sum = 0;
  for (const Segment& s : r->data) sum += s.len;
  Require(sum == r->data_bytes, "segments do not add up to data_bytes");
  switch (r->type) {
    case kTypeIn:
    case kTypeOut: {
      Require(r->data_bytes % kSectorSize == 0, "a transfer of part of a sector");
      Require(r->sector <= limits.capacity &&
                  r->data_bytes / kSectorSize <= limits.capacity - r->sector,
              "a transfer past the end of the disk");
      Require(r->type == kTypeIn || !limits.read_only, "a write to a read-only disk");
      const auto& side = r->type == kTypeIn ? chain.writable : chain.readable;
      for (const Segment& s : r->data) Require(Inside(s, side), "a segment outside its buffers");
      // A read's data ends before the status byte (by position in the chain; the guest may
      // still make two buffers alias, which costs it only its own data: the status is last).
      if (r->type == kTypeIn) {
        Require(r->data_bytes < chain.writable_bytes, "read data takes the status byte");
      }
      break;
    }
    case kTypeGetId:
      Require(r->data_bytes == kIdBytes, "an id that is not 20 bytes");
      for (const Segment& s : r->data) Require(Inside(s, chain.writable), "id outside buffers");
      break;
    case kTypeFlush:
      Require(r->sector == 0 && r->data.empty(), "a flush with a sector or data");
      break;
    case kTypeDiscard:
    case kTypeWriteZeroes:
      Require(!limits.read_only, "a discard or write-zeroes on a read-only disk");
      Require(!r->ranges.empty() && r->ranges.size() <= limits.max_ranges, "range count");
      for (const Range& range : r->ranges) {
        Require(range.sector <= limits.capacity && range.sectors <= limits.capacity - range.sector,
                "a range past the end of the disk");
        Require(!range.unmap || r->type == kTypeWriteZeroes, "a discard with UNMAP");
      }
      break;
    default:
      Require(false, "an unknown type accepted");
  }
}

}  // namespace
}  // namespace vmmkit::virtio_blk

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::virtio_blk::Run(data, size);
  return 0;
}
