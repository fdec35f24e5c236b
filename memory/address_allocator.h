// File: memory/address_allocator.h
// -----------------------------------------------------------------------------
// AddressAllocator hands out ranges of a fixed 64-bit window: guest-physical RAM and MMIO holes,
// PCI BAR space, IOVA windows. First fit with power-of-two alignment, exact-range reservation for
// fixed addresses (the IOAPIC, a BAR the guest programmed), and RESOURCE_EXHAUSTED that names the
// window and the request when nothing fits. The window may end exactly at 2^64.
//
//   ASSIGN_OR_RETURN(AddressAllocator mmio, AddressAllocator::Create(0xc0000000, 0x3ec00000));
//   RETURN_IF_ERROR(mmio.Reserve(0xfec00000, 0x1000));                 // IOAPIC
//   ASSIGN_OR_RETURN(uint64_t bar, mmio.Allocate(1 << 20, 1 << 20));   // 1 MiB BAR, aligned
//   RETURN_IF_ERROR(mmio.Free(bar));
//
// Thread-safety: none; callers serialize.

#ifndef VMMKIT_MEMORY_ADDRESS_ALLOCATOR_H_
#define VMMKIT_MEMORY_ADDRESS_ALLOCATOR_H_

#include <cstdint>
#include <map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vmmkit {

class AddressAllocator {
 public:
  // Manages [base, base + size); size > 0 and the window may not extend past 2^64.
  static absl::StatusOr<AddressAllocator> Create(uint64_t base, uint64_t size);

  // The lowest `alignment`-aligned free range of `size` bytes. size > 0; alignment a power of two.
  absl::StatusOr<uint64_t> Allocate(uint64_t size, uint64_t alignment);
  // Takes exactly [start, start + size): OUT_OF_RANGE outside the window, ALREADY_EXISTS if any
  // byte of it is allocated.
  absl::Status Reserve(uint64_t start, uint64_t size);
  // Releases the allocation or reservation that starts at `start` (NOT_FOUND otherwise).
  absl::Status Free(uint64_t start);

  uint64_t base() const { return base_; }
  uint64_t last() const { return last_; }
  // Bytes not allocated. A full 2^64 window reports 2^64 - 1 when empty (the count saturates).
  uint64_t free_bytes() const;
  size_t allocation_count() const { return used_.size(); }

 private:
  AddressAllocator(uint64_t base, uint64_t last) : base_(base), last_(last) {}
  std::string Describe() const;

  uint64_t base_;
  uint64_t last_;                      // Inclusive.
  std::map<uint64_t, uint64_t> used_;  // start -> inclusive last.
};

}  // namespace vmmkit

#endif  // VMMKIT_MEMORY_ADDRESS_ALLOCATOR_H_
