#include "virtio_blk/request.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace vmmkit::virtio_blk {
namespace {

struct Header {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(Header) == 16);

struct RangeWire {
  uint64_t sector;
  uint32_t sectors;
  uint32_t flags;
};
static_assert(sizeof(RangeWire) == 16);

// The `take` bytes from byte `skip` of the buffers, laid end to end, as segments. (addr + skip
// cannot wrap: SplitQueue refuses a buffer that wraps the address space.)
std::vector<Segment> Slice(const std::vector<virtio::Buffer>& buffers, uint64_t skip,
                           uint64_t take) {
  std::vector<Segment> out;
  for (const virtio::Buffer& b : buffers) {
    if (take == 0) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(b.len - skip, take);
    out.push_back({Iova(b.addr.raw() + skip), static_cast<uint32_t>(n)});
    take -= n;
    skip = 0;
  }
  return out;
}

// Copies out.size() bytes from byte `skip` of the buffers, laid end to end.
absl::Status Gather(const DmaSpace& dma, const std::vector<virtio::Buffer>& buffers, uint64_t skip,
                    absl::Span<uint8_t> out) {
  size_t done = 0;
  for (const Segment& s : Slice(buffers, skip, out.size())) {
    if (absl::Status st = dma.Read(s.addr, out.subspan(done, s.len)); !st.ok()) return st;
    done += s.len;
  }
  return absl::OkStatus();
}

// A transfer of `bytes` from `sector`: whole sectors, inside the disk.
bool InBounds(uint64_t sector, uint64_t bytes, uint64_t capacity) {
  return bytes % kSectorSize == 0 && sector <= capacity && bytes / kSectorSize <= capacity - sector;
}

}  // namespace

absl::StatusOr<Request> ParseRequest(const virtio::DescriptorChain& chain, const DmaSpace& dma,
                                     const DiskLimits& limits) {
  // The status byte: the last device-writable byte.
  const virtio::Buffer* last = nullptr;
  for (const virtio::Buffer& b : chain.writable) {
    if (b.len > 0) last = &b;
  }
  if (last == nullptr) {
    return absl::InvalidArgumentError("virtio-blk: the request has no status byte to answer in");
  }
  const std::optional<Iova> status_addr = last->addr.TryAdd(last->len - 1);
  if (!status_addr) {
    return absl::InvalidArgumentError("virtio-blk: the status byte's address wraps");
  }
  if (chain.readable_bytes < sizeof(Header)) {
    return absl::InvalidArgumentError(absl::StrCat("virtio-blk: a request header of ",
                                                   chain.readable_bytes, " bytes (16 needed)"));
  }
  Header h;
  if (absl::Status s =
          Gather(dma, chain.readable, 0, absl::MakeSpan(reinterpret_cast<uint8_t*>(&h), sizeof(h)));
      !s.ok()) {
    return s;
  }
  Request r;
  r.type = h.type;
  r.sector = h.sector;
  r.status_addr = *status_addr;
  const uint64_t readable_data = chain.readable_bytes - sizeof(Header);
  const uint64_t writable_data = chain.writable_bytes - 1;
  const auto refuse = [&](uint8_t status) {
    r.status = status;
    r.data.clear();
    r.data_bytes = 0;
    r.ranges.clear();
    return r;
  };
  switch (h.type) {
    case kTypeIn:
      r.data = Slice(chain.writable, 0, writable_data);
      r.data_bytes = writable_data;
      if (!InBounds(r.sector, r.data_bytes, limits.capacity)) return refuse(kStatusIoErr);
      return r;
    case kTypeOut:
      if (limits.read_only) return refuse(kStatusIoErr);
      r.data = Slice(chain.readable, sizeof(Header), readable_data);
      r.data_bytes = readable_data;
      if (!InBounds(r.sector, r.data_bytes, limits.capacity)) return refuse(kStatusIoErr);
      return r;
    case kTypeFlush:
      if (r.sector != 0) return refuse(kStatusIoErr);
      return r;
    case kTypeGetId:
      if (writable_data < kIdBytes) return refuse(kStatusIoErr);
      r.data = Slice(chain.writable, 0, kIdBytes);
      r.data_bytes = kIdBytes;
      return r;
    case kTypeDiscard:
    case kTypeWriteZeroes: {
      if (limits.read_only) return refuse(kStatusIoErr);
      const uint64_t n = readable_data / sizeof(RangeWire);
      if (readable_data % sizeof(RangeWire) != 0 || n == 0 || n > limits.max_ranges) {
        return refuse(kStatusIoErr);
      }
      for (uint64_t i = 0; i < n; ++i) {
        RangeWire w;
        if (absl::Status s = Gather(dma, chain.readable, sizeof(Header) + i * sizeof(RangeWire),
                                    absl::MakeSpan(reinterpret_cast<uint8_t*>(&w), sizeof(w)));
            !s.ok()) {
          return s;
        }
        const uint32_t allowed = h.type == kTypeWriteZeroes ? kWriteZeroesUnmap : 0;
        if ((w.flags & ~allowed) != 0) return refuse(kStatusUnsupported);
        if (!InBounds(w.sector, uint64_t{w.sectors} * kSectorSize, limits.capacity)) {
          return refuse(kStatusIoErr);
        }
        r.ranges.push_back({w.sector, w.sectors, (w.flags & kWriteZeroesUnmap) != 0});
      }
      return r;
    }
    default:
      return refuse(kStatusUnsupported);
  }
}

}  // namespace vmmkit::virtio_blk
