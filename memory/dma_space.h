// File: memory/dma_space.h
// -----------------------------------------------------------------------------
// DmaSpace is the one interface through which an emulated device reads and writes memory for
// DMA: at bus addresses (I/O virtual addresses, as the device sees them), never through raw host
// pointers. What a bus address means is the DmaSpace's business: IdentityDmaSpace, for a machine
// without an IOMMU, takes it as a guest-physical address in guest RAM; a vIOMMU's DmaSpace
// translates it through the guest's IOMMU tables first. Either way the device cannot reach memory
// the guest did not give it: an address outside guest RAM (a hole, MMIO, past the end) is an
// error, never an access to the VMM's own memory.
//
//   IdentityDmaSpace dma(guest_memory);
//   ASSIGN_OR_RETURN(Descriptor d, dma.ReadObj<Descriptor>(Iova(ring + 16 * i)));
//   RETURN_IF_ERROR(dma.Write(Iova(d.addr), payload));
//
// Thread-safety: as the memory it reaches (GuestMemory: any thread; the guest may write the same
// memory concurrently, so a device copies what it reads before checking it).

#ifndef VMMKIT_MEMORY_DMA_SPACE_H_
#define VMMKIT_MEMORY_DMA_SPACE_H_

#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "memory/address.h"
#include "memory/guest_memory.h"

namespace vmmkit {

// A run of `len` bytes at bus address `iova`.
struct DmaRange {
  Iova iova;
  uint64_t len = 0;
};

class DmaSpace {
 public:
  virtual ~DmaSpace() = default;

  // Copies `dst.size()` bytes from bus address `iova`. OUT_OF_RANGE where no memory backs the
  // whole range; a translating space also fails where the guest's IOMMU does not allow the read.
  virtual absl::Status Read(Iova iova, absl::Span<uint8_t> dst) const = 0;
  // Copies `src` to bus address `iova`, with the same errors. Nothing is written on failure.
  virtual absl::Status Write(Iova iova, absl::Span<const uint8_t> src) const = 0;

  // Moves bytes between the file `fd`, from byte `offset` on, and `ranges` of bus addresses laid
  // end to end: ReadFromFd reads the file into memory (a device's write to memory), WriteToFd
  // writes memory to the file. A space that can name the memory behind every range does it with
  // preadv/pwritev on that memory (no copy, one call for many ranges); the default goes range by
  // range through a bounded bounce buffer with Read and Write. The same errors as Read and Write
  // for the memory; the file's errno (OUT_OF_RANGE for a read past its end) for the file. On
  // failure the memory or the file may hold part of the data.
  virtual absl::Status ReadFromFd(int fd, uint64_t offset, absl::Span<const DmaRange> ranges) const;
  virtual absl::Status WriteToFd(int fd, uint64_t offset, absl::Span<const DmaRange> ranges) const;

  // Names the host memory behind `ranges` (laid end to end) for I/O that the kernel finishes
  // later (io_uring): true with `iov` holding it where the space can name all of it; false where
  // it cannot, and the caller goes through ReadFromFd/WriteToFd instead. A translating space
  // answers false: the guest may unmap an IOVA while the kernel still writes behind it. What is
  // named stays valid as long as the memory the space reaches.
  virtual bool HostIovecs(absl::Span<const DmaRange> ranges, std::vector<iovec>& iov) const;

  template <typename T>
  absl::StatusOr<T> ReadObj(Iova iova) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    absl::Status s = Read(iova, absl::MakeSpan(reinterpret_cast<uint8_t*>(&value), sizeof(T)));
    if (!s.ok()) return s;
    return value;
  }
  template <typename T>
  absl::Status WriteObj(Iova iova, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return Write(iova, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }
};

// Bus address == guest-physical address, within guest RAM: a machine without an IOMMU.
class IdentityDmaSpace : public DmaSpace {
 public:
  // `memory` must outlive the space.
  explicit IdentityDmaSpace(const GuestMemory& memory) : memory_(memory) {}

  absl::Status Read(Iova iova, absl::Span<uint8_t> dst) const override;
  absl::Status Write(Iova iova, absl::Span<const uint8_t> src) const override;
  // preadv/pwritev straight into or out of guest RAM when each range lies in one region.
  absl::Status ReadFromFd(int fd, uint64_t offset,
                          absl::Span<const DmaRange> ranges) const override;
  absl::Status WriteToFd(int fd, uint64_t offset, absl::Span<const DmaRange> ranges) const override;
  // Guest RAM, where each range lies in one region.
  bool HostIovecs(absl::Span<const DmaRange> ranges, std::vector<iovec>& iov) const override;

 private:
  const GuestMemory& memory_;
};

}  // namespace vmmkit

#endif  // VMMKIT_MEMORY_DMA_SPACE_H_
