// File: pci/msix_table.h
// -----------------------------------------------------------------------------
// MsixTable emulates a passed-through device's MSI-X table and pending-bit array (PBA), which the
// VMM traps rather than maps: the guest programs guest-physical message addresses and vectors
// there, which mean nothing to the host device. Each change to a vector's effective state (its
// message, or its mask) is reported, so the VMM can update the KVM route and irqfd of that vector
// (irq/'s MsiRoutes) and the VFIO eventfd; a vector that fires while masked is recorded as
// pending for the guest to see in the PBA.
//
//   MsixTable table(msix.table_size, [&](uint16_t i, const MsixVector& v) { ... });
//   table.WriteTable(offset, bytes);   // from the BAR trap, for accesses inside the table
//   table.ReadPba(offset, bytes);
//
// Accesses follow the PCI rules: aligned DWORD or QWORD only; anything else (a guest's mistake or
// malice) reads as zero and writes nothing. Vectors start masked, as after a device reset.
// Thread-safety: any thread (vCPUs); the callback runs after the lock is released.

#ifndef VMMKIT_PCI_MSIX_TABLE_H_
#define VMMKIT_PCI_MSIX_TABLE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/types/span.h"
#include "base/mutex.h"

namespace vmmkit::pci {

struct MsixVector {
  uint64_t address = 0;
  uint32_t data = 0;
  bool masked = true;
  friend bool operator==(const MsixVector&, const MsixVector&) = default;
};

class MsixTable {
 public:
  static constexpr uint64_t kEntrySize = 16;
  // `size`: vectors (1-2048, from the capability).
  MsixTable(uint16_t size, std::function<void(uint16_t index, const MsixVector& vector)> changed);

  uint16_t size() const { return size_; }
  MsixVector vector(uint16_t index) const;

  // The table: `offset` from its start.
  void ReadTable(uint64_t offset, absl::Span<uint8_t> data) const;
  void WriteTable(uint64_t offset, absl::Span<const uint8_t> data);
  // The PBA: read-only to the guest.
  void ReadPba(uint64_t offset, absl::Span<uint8_t> data) const;
  // The VMM: a masked vector fired (true), or its pending interrupt was delivered (false).
  void SetPending(uint16_t index, bool pending);

 private:
  struct Entry {
    uint32_t address_lo = 0, address_hi = 0, data = 0, control = 1;  // Masked.
    MsixVector Effective() const {
      return {uint64_t{address_hi} << 32 | address_lo, data, (control & 1) != 0};
    }
  };
  static bool ValidAccess(uint64_t offset, size_t len) {
    return (len == 4 || len == 8) && offset % len == 0;
  }

  const uint16_t size_;  // Vectors; entries_ and pending_ never change size.
  const std::function<void(uint16_t, const MsixVector&)> changed_;
  mutable Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  // One bit per vector.
  std::vector<uint64_t> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vmmkit::pci

#endif  // VMMKIT_PCI_MSIX_TABLE_H_
