// File: memory/guest_memory.h
// -----------------------------------------------------------------------------
// GuestMemory is the guest's RAM as the VMM sees it: an immutable, sorted set of non-overlapping
// GuestRegions, and the only way device models touch guest memory. Every access is bounds-checked
// against the real region sizes: a range that falls in a hole, crosses the end of a region (even
// into an adjacent one), or wraps past 2^64 returns OUT_OF_RANGE and touches nothing. Addresses
// and lengths usually come from the guest, so this is the line that keeps a hostile guest from
// making the VMM touch memory it does not own.
//
//   ASSIGN_OR_RETURN(GuestMemory mem, GuestMemory::Create({low_ram, high_ram}));
//   ASSIGN_OR_RETURN(auto desc, mem.ReadObj<VirtqDesc>(GuestAddress(desc_addr)));
//   RETURN_IF_ERROR(mem.Write(GuestAddress(desc.addr), payload));
//
// Thread-safety: const methods may be called concurrently (vCPU and device threads); the guest
// itself may write the same bytes at any time, so treat everything read as untrusted.

#ifndef VMMKIT_MEMORY_GUEST_MEMORY_H_
#define VMMKIT_MEMORY_GUEST_MEMORY_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/address.h"
#include "memory/guest_region.h"

namespace vmmkit {

class GuestMemory {
 public:
  // Takes the regions in any order; rejects null or overlapping regions with INVALID_ARGUMENT.
  static absl::StatusOr<GuestMemory> Create(std::vector<std::shared_ptr<GuestRegion>> regions);
  // Allocates one region per (start, size) pair with `options`, then calls Create.
  static absl::StatusOr<GuestMemory> CreateRam(
      absl::Span<const std::pair<GuestAddress, uint64_t>> layout,
      const GuestRegionOptions& options = {});

  GuestMemory(GuestMemory&&) = default;
  GuestMemory& operator=(GuestMemory&&) = default;

  // The regions in ascending address order.
  const std::vector<std::shared_ptr<GuestRegion>>& regions() const { return regions_; }
  uint64_t total_size() const { return total_size_; }

  // The region containing `addr`, or null.
  const GuestRegion* FindRegion(GuestAddress addr) const;

  // The host address of guest range [addr, addr + len), which must lie inside one region.
  // len == 0 is INVALID_ARGUMENT (no address can be vouched for); other failures OUT_OF_RANGE.
  // The pointer is valid while this GuestMemory (or the region) is alive.
  absl::StatusOr<uint8_t*> Translate(GuestAddress addr, uint64_t len) const;

  // Copies guest [addr, addr + dst.size()) into dst / src into guest [addr, addr + src.size()).
  // An empty span is a no-op that succeeds wherever it points, like memcpy with n = 0.
  absl::Status Read(GuestAddress addr, absl::Span<uint8_t> dst) const;
  absl::Status Write(GuestAddress addr, absl::Span<const uint8_t> src) const;

  // Typed access for trivially copyable T (descriptors, boot structures). No alignment required.
  template <typename T>
  absl::StatusOr<T> ReadObj(GuestAddress addr) const {
    static_assert(std::is_trivially_copyable_v<T>, "ReadObj needs a trivially copyable type");
    T value;
    absl::Status s = Read(addr, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&value), sizeof(T)));
    if (!s.ok()) return s;
    return value;
  }
  template <typename T>
  absl::Status WriteObj(GuestAddress addr, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>, "WriteObj needs a trivially copyable type");
    return Write(addr,
                 absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }

 private:
  explicit GuestMemory(std::vector<std::shared_ptr<GuestRegion>> regions);
  absl::StatusOr<uint8_t*> TranslateFor(const char* op, GuestAddress addr, uint64_t len) const;

  std::vector<std::shared_ptr<GuestRegion>> regions_;  // Sorted by start.
  std::vector<uint64_t> starts_;  // regions_[i]->start().raw(), contiguous for binary search.
  uint64_t total_size_ = 0;
};

}  // namespace vmmkit

#endif  // VMMKIT_MEMORY_GUEST_MEMORY_H_
