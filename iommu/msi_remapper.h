// File: iommu/msi_remapper.h
// -----------------------------------------------------------------------------
// MSI through an IOMMU, in the two ways platforms do it.
//
// InterruptRemappingTable (x86, VT-d interrupt remapping). A device's MSI in remappable format
// carries no vector or destination, only a handle (and, with SHV, a subhandle in the data) that
// indexes the interrupt remapping table. Each entry (IRTE) holds the vector, destination, delivery
// and trigger mode, and which requester (source-id) may use it. Remap() decodes the message,
// checks the source-id, and returns the compatibility-format message KVM can deliver; a message
// from the wrong requester is rejected, so a device cannot raise another device's interrupts.
//
// MsiIovaWindow (ARM SMMU, some POWER). MSI writes go through the IOMMU like DMA, so the MSI
// controller's doorbell page must be mapped in the device's IOMMU domain. The user registers one
// reserved IOVA window per domain; doorbell pages are allocated from it as vectors are enabled,
// mapped to the doorbell's physical frame, shared (refcounted) by every vector using the same
// doorbell, and unmapped when the last is released. If the window cannot hold another page,
// Acquire fails with RESOURCE_EXHAUSTED (as pci_enable_msix_range() fails) and nothing of that
// call stays mapped.
//
//   InterruptRemappingTable irt(256);
//   RETURN_IF_ERROR(irt.Set(5, Irte{.present = true, .vector = 0x41, .destination = 0, ...}));
//   ASSIGN_OR_RETURN(MsiMessage out, irt.Remap(device_msg, /*source_id=*/0x0018));
//
//   MsiIovaWindow window(doorbell_mapper);
//   RETURN_IF_ERROR(window.Register(Iova(0x8000000), 0x100000));
//   ASSIGN_OR_RETURN(std::vector<Iova> iovas, window.Acquire({gic_its_doorbell, ...}));
//
// Thread-safety: none; program from one thread (the event loop) or under a lock.

#ifndef VMMKIT_IOMMU_MSI_REMAPPER_H_
#define VMMKIT_IOMMU_MSI_REMAPPER_H_

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "iommu/iova_tree.h"
#include "irq/msi.h"
#include "memory/address.h"

namespace vmmkit::iommu {

using MsiMessage = irq::MsiMessage;

// One interrupt remapping table entry, decoded.
struct Irte {
  bool present = false;
  bool fault_processing_disable = false;
  bool dest_logical = false;
  bool redirection_hint = false;
  bool level_triggered = false;
  uint8_t delivery_mode = 0;  // 0 fixed, 1 lowest priority, 2 SMI, 4 NMI, 5 INIT, 7 ExtINT.
  uint8_t vector = 0;
  uint32_t destination = 0;       // APIC id (x2APIC: 32 bits).
  uint16_t source_id = 0;         // Requester id (bus << 8 | devfn), or a bus range for SVT 2.
  uint8_t source_qualifier = 0;   // SQ: which low function bits to ignore (0-3).
  uint8_t source_validation = 0;  // SVT: 0 none, 1 requester id, 2 bus range.

  // From the 128-bit in-memory format a guest writes. `x2apic` (IRTA.EIME): the destination is
  // all of bits 63:32; otherwise (xAPIC) the APIC id in bits 47:40.
  static Irte Decode(uint64_t low, uint64_t high, bool x2apic = true);
  // Whether the entry sets bits the format reserves (fault reason 0x24): 14:12 and 31:24, IM
  // (15: posted interrupts are not offered), 127:84, and in xAPIC mode 39:32 and 63:48.
  static bool HasReservedBits(uint64_t low, uint64_t high, bool x2apic);
};

// The interrupt index a remappable-format message names: its handle, plus the subhandle (data
// bits 15:0) when SHV is set. INVALID_ARGUMENT if `msg` is not an MSI address or is in
// compatibility format.
absl::StatusOr<uint32_t> InterruptIndex(const MsiMessage& msg);
// What entry `index` makes of an interrupt from `source_id`: the compatibility-format message
// KVM delivers, or PERMISSION_DENIED if the entry's source validation rejects the requester
// (NOT_FOUND if it is not present). `what` names the request in errors.
absl::StatusOr<MsiMessage> RemapThrough(const Irte& entry, uint32_t index, uint16_t source_id,
                                        absl::string_view what);

// As an irq::MsiTranslator, it is what irq::MsiRoutes resolves remappable messages through.
class InterruptRemappingTable : public irq::MsiTranslator {
 public:
  // `entries`: the table size the guest programmed (IRTA.S gives 2^(S+1)), at most 65536.
  explicit InterruptRemappingTable(uint32_t entries);
  uint32_t entries() const { return static_cast<uint32_t>(table_.size()); }

  absl::Status Set(uint32_t index, const Irte& irte);
  absl::Status Clear(uint32_t index);

  // Whether `msg` is in remappable format (address bit 4).
  static bool IsRemappable(const MsiMessage& msg);
  // Translates a remappable-format MSI from `source_id`. INVALID_ARGUMENT if not an MSI address
  // or not remappable; OUT_OF_RANGE for an index past the table; NOT_FOUND for an entry that is
  // not present; PERMISSION_DENIED if the source-id does not match.
  absl::StatusOr<MsiMessage> Remap(const MsiMessage& msg, uint16_t source_id) const;
  // irq::MsiTranslator: Remap for a remappable-format message; a compatibility-format one passes
  // unchanged (this table has no switch that blocks that format: VT-d's CFI is the unit's).
  absl::StatusOr<MsiMessage> Translate(const MsiMessage& msg, uint16_t source_id) override {
    if (!irq::IsRemappableFormat(msg)) return msg;
    return Remap(msg, source_id);
  }

 private:
  std::vector<Irte> table_;
};

// Maps and unmaps doorbell pages in one IOMMU domain (the vfio/ backend, or a fake).
class DoorbellMapper {
 public:
  virtual ~DoorbellMapper() = default;
  virtual absl::Status MapDoorbell(Iova iova, uint64_t doorbell_page, uint64_t size) = 0;
  virtual absl::Status UnmapDoorbell(Iova iova, uint64_t size) = 0;
};

class MsiIovaWindow {
 public:
  explicit MsiIovaWindow(DoorbellMapper& mapper, uint64_t page_size = 4096)
      : mapper_(mapper), page_size_(page_size) {}

  // The reserved window, once per domain. FAILED_PRECONDITION the second time.
  absl::Status Register(Iova base, uint64_t size);
  // For each vector's doorbell (the physical address of the MSI controller's doorbell register),
  // the IOVA the device must write to instead. All or nothing.
  absl::StatusOr<std::vector<Iova>> Acquire(absl::Span<const uint64_t> doorbells);
  // Drops one reference per doorbell; a page whose last reference goes is unmapped.
  // NOT_FOUND (and nothing released) if any doorbell holds no reference.
  absl::Status Release(absl::Span<const uint64_t> doorbells);

  size_t mapped_pages() const { return pages_.size(); }
  uint32_t references(uint64_t doorbell) const;

 private:
  struct Page {
    Iova iova;
    uint32_t refs;
  };
  void Drop(uint64_t page);

  DoorbellMapper& mapper_;
  uint64_t page_size_;
  std::optional<std::pair<Iova, Iova>> window_;  // [first, last]
  IovaTree allocated_;
  std::map<uint64_t, Page> pages_;  // Doorbell page (physical) -> its IOVA page.
};

}  // namespace vmmkit::iommu

#endif  // VMMKIT_IOMMU_MSI_REMAPPER_H_
