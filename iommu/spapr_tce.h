// File: iommu/spapr_tce.h
// -----------------------------------------------------------------------------
// A sPAPR (POWER) TCE table: the guest-visible IOMMU of a PCI host bridge's DMA window. The guest
// writes translation control entries with the H_PUT_TCE hypercall; each maps one IOMMU page of
// the window to a guest address with read/write permission bits.
//
// Two tables must agree: the guest view (what H_PUT_TCE wrote) and the hardware table that the
// host IOMMU uses for passthrough devices (programmed through vfio/, usually via a VfioShadow).
// While no passthrough device is on the bus, the guest view may live elsewhere: on real POWER
// hosts KVM keeps it (KVM_CREATE_SPAPR_TCE_64) and handles H_PUT_TCE in the kernel, which the
// userspace notifiers never see. So when the first passthrough device is hot-plugged,
// AttachPassthrough moves the view into userspace and replays every existing entry into the
// hardware table; from then on each H_PUT_TCE is mirrored synchronously (sPAPR has no caching
// mode: a TCE is live when the hypercall returns). Detach unregisters; a hotplug -> unplug ->
// hotplug of the same device leaves exactly one notifier registered.
//
//   ASSIGN_OR_RETURN(auto table, SpaprTceTable::Create("phb0", 0, 16, 1 << 16, std::move(kvm)));
//   RETURN_IF_ERROR(table->PutTce(ioba, gpa | kTceRead | kTceWrite));   // from H_PUT_TCE
//   RETURN_IF_ERROR(table->AttachPassthrough(shadow.get()));           // first VFIO device
//
// The x86 VMM does not use this; a POWER VMM embedding vmmkit would.
// Thread-safety: none (the hypercall handler and hotplug run on one thread or under a lock).

#ifndef VMMKIT_IOMMU_SPAPR_TCE_H_
#define VMMKIT_IOMMU_SPAPR_TCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "iommu/iommu.h"

namespace vmmkit::iommu {

inline constexpr uint64_t kTceRead = 1;
inline constexpr uint64_t kTceWrite = 2;

// Storage for a guest view: a KVM-accelerated table on a POWER host, or a vector.
class TceStorage {
 public:
  virtual ~TceStorage() = default;
  virtual uint64_t size() const = 0;  // Entries.
  virtual uint64_t Get(uint64_t index) const = 0;
  virtual void Put(uint64_t index, uint64_t tce) = 0;
};

class VectorTceStorage : public TceStorage {
 public:
  explicit VectorTceStorage(uint64_t entries) : tces_(entries, 0) {}
  uint64_t size() const override { return tces_.size(); }
  uint64_t Get(uint64_t index) const override { return tces_[index]; }
  void Put(uint64_t index, uint64_t tce) override { tces_[index] = tce; }

 private:
  std::vector<uint64_t> tces_;
};

class SpaprTceTable : public IommuModel {
 public:
  // A window of `entries` pages of 2^page_shift bytes (12, 16, 21 or 24) from bus address
  // `bus_offset`. `elsewhere` is where the guest view lives until a passthrough device arrives
  // (null: in userspace from the start); it must have `entries` entries.
  static absl::StatusOr<std::unique_ptr<SpaprTceTable>> Create(
      std::string name, uint64_t bus_offset, uint32_t page_shift, uint64_t entries,
      std::unique_ptr<TceStorage> elsewhere = nullptr);

  // H_PUT_TCE: INVALID_ARGUMENT (H_PARAMETER) for an I/O bus address outside the window or not
  // page aligned, or a TCE whose address is not page aligned.
  absl::Status PutTce(uint64_t ioba, uint64_t tce);
  // H_GET_TCE.
  absl::StatusOr<uint64_t> GetTce(uint64_t ioba) const;

  // A passthrough device's hardware table joins. The first moves the guest view to userspace.
  // ALREADY_EXISTS if `hardware` is attached already; a failed replay leaves it detached.
  absl::Status AttachPassthrough(IommuNotifier* hardware);
  // NOT_FOUND if not attached.
  absl::Status DetachPassthrough(IommuNotifier* hardware);

  bool view_in_userspace() const { return elsewhere_ == nullptr; }
  IommuAddressSpace& address_space() { return space_; }
  uint64_t bus_offset() const { return bus_offset_; }
  uint64_t page_size() const { return uint64_t{1} << page_shift_; }
  uint64_t entries() const { return view().size(); }

  // IommuModel.
  absl::StatusOr<IotlbEntry> Translate(Iova iova, IommuAccess access) override;
  void Walk(Iova start, Iova last, const std::function<void(const IotlbEntry&)>& visit) override;

 private:
  SpaprTceTable(std::string name, uint64_t bus_offset, uint32_t page_shift, uint64_t entries,
                std::unique_ptr<TceStorage> elsewhere);
  const TceStorage& view() const {
    if (elsewhere_ != nullptr) return *elsewhere_;
    return userspace_;
  }
  absl::StatusOr<uint64_t> Index(uint64_t ioba, const char* op) const;

  std::string name_;
  uint64_t bus_offset_;
  uint32_t page_shift_;
  VectorTceStorage userspace_;
  std::unique_ptr<TceStorage> elsewhere_;
  IommuAddressSpace space_;
};

}  // namespace vmmkit::iommu

#endif  // VMMKIT_IOMMU_SPAPR_TCE_H_
