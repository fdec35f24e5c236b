#include "vfio/container.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "vfio/internal/cap_chain.h"
#include "vfio/internal/dma_checks.h"
#include "vfio/internal/vfio_abi.h"

namespace vmmkit::vfio {

using internal::CheckDmaArgs;
using internal::DmaRange;
using internal::WithDmaHint;

const char* IommuTypeName(IommuType type) {
  switch (type) {
    case IommuType::kType1:
      return "type1";
    case IommuType::kType1v2:
      return "type1v2";
    case IommuType::kSpaprTceV2:
      return "sPAPR TCE v2";
  }
  return "unknown";
}

absl::StatusOr<std::shared_ptr<VfioContainer>> VfioContainer::Open(VfioSyscalls& sys,
                                                                   const std::string& path) {
  const int raw = sys.Open(path.c_str(), O_RDWR);
  if (raw < 0) return ErrnoStatus(-raw, "open ", path);
  ScopedFd fd(raw);
  ASSIGN_OR_RETURN(int version,
                   VfioIoctl(sys, fd.get(), VFIO_GET_API_VERSION, 0, "VFIO_GET_API_VERSION"));
  if (version != internal::kVfioApiVersion) {
    return absl::FailedPreconditionError(absl::StrCat("VFIO_GET_API_VERSION returned ", version,
                                                      "; vmmkit requires ",
                                                      internal::kVfioApiVersion));
  }
  return std::shared_ptr<VfioContainer>(new VfioContainer(sys, std::move(fd)));
}

absl::StatusOr<bool> VfioContainer::CheckExtension(uint32_t extension) const {
  ASSIGN_OR_RETURN(int r, VfioIoctl(sys_, fd_.get(), VFIO_CHECK_EXTENSION, extension,
                                    "VFIO_CHECK_EXTENSION ext=", extension));
  return r > 0;
}

absl::Status VfioContainer::SetIommu(IommuType type) {
  const uint32_t t = static_cast<uint32_t>(type);
  if (type_) {
    return absl::FailedPreconditionError(absl::StrCat("VFIO_SET_IOMMU type=", t, " (",
                                                      IommuTypeName(type), "): the container ",
                                                      "already uses ", IommuTypeName(*type_)));
  }
  RETURN_IF_ERROR(WithDmaHint(VfioIoctl(sys_, fd_.get(), VFIO_SET_IOMMU, t,
                                        "VFIO_SET_IOMMU type=", t, " (", IommuTypeName(type), ")")
                                  .status()));
  type_ = type;
  if (type == IommuType::kSpaprTceV2) {
    // The default 32-bit window exists from the start; record it so maps can be checked.
    auto info = GetSpaprInfo();
    if (!info.ok()) {
      type_.reset();  // The kernel keeps the model; this object refuses to go on half-informed.
      return info.status();
    }
    const uint64_t size = info->dma32_window.last.raw() - info->dma32_window.start.raw() + 1;
    windows_[info->dma32_window.start.raw()] = size;
  }
  return absl::OkStatus();
}

absl::StatusOr<IommuType> VfioContainer::SetType1Iommu() {
  for (IommuType type : {IommuType::kType1v2, IommuType::kType1}) {
    ASSIGN_OR_RETURN(bool supported, CheckExtension(static_cast<uint32_t>(type)));
    if (!supported) continue;
    RETURN_IF_ERROR(SetIommu(type));
    return type;
  }
  return absl::FailedPreconditionError(
      "VFIO_SET_IOMMU: the kernel offers neither Type1v2 nor Type1 (is vfio_iommu_type1 loaded?)");
}

absl::StatusOr<IommuCapabilities> VfioContainer::GetType1Info() const {
  ASSIGN_OR_RETURN(std::vector<uint64_t> buf,
                   internal::GetInfoWithCaps(sys_, fd_.get(), VFIO_IOMMU_GET_INFO,
                                             vfio_iommu_type1_info{}, "VFIO_IOMMU_GET_INFO"));
  const auto* info = reinterpret_cast<const vfio_iommu_type1_info*>(buf.data());
  IommuCapabilities out;
  if (info->flags & VFIO_IOMMU_INFO_PGSIZES) out.page_sizes = info->iova_pgsizes;
  if (!(info->flags & VFIO_IOMMU_INFO_CAPS)) return out;
  const size_t size = buf.size() * 8;
  const auto* bytes = reinterpret_cast<const uint8_t*>(buf.data());
  const std::string what = "VFIO_IOMMU_GET_INFO";
  RETURN_IF_ERROR(internal::WalkCapChain(
      bytes, size, info->cap_offset, what, [&](uint16_t id, size_t off) -> absl::Status {
        if (id == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
          vfio_iommu_type1_info_cap_iova_range r;
          RETURN_IF_ERROR(internal::ReadCap(bytes, size, off, what, &r));
          const size_t ranges_at = off + sizeof(r);
          if (r.nr_iovas > (size - ranges_at) / sizeof(vfio_iova_range)) {
            return absl::InternalError(absl::StrCat(
                what, ": malformed capability chain: ", r.nr_iovas, " IOVA ranges do not fit"));
          }
          for (uint32_t i = 0; i < r.nr_iovas; ++i) {
            vfio_iova_range range;
            std::memcpy(&range, bytes + ranges_at + i * sizeof(range), sizeof(range));
            out.valid_iovas.push_back({Iova(range.start), Iova(range.end)});
          }
        } else if (id == VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
          vfio_iommu_type1_info_dma_avail a;
          RETURN_IF_ERROR(internal::ReadCap(bytes, size, off, what, &a));
          out.dma_mappings_available = a.avail;
        }
        return absl::OkStatus();
      }));
  return out;
}

absl::StatusOr<SpaprTceInfo> VfioContainer::GetSpaprInfo() const {
  vfio_iommu_spapr_tce_info info{};
  info.argsz = sizeof(info);
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), VFIO_IOMMU_SPAPR_TCE_GET_INFO,
                            reinterpret_cast<uintptr_t>(&info), "VFIO_IOMMU_SPAPR_TCE_GET_INFO")
                      .status());
  if (info.dma32_window_size == 0) {
    return absl::InternalError(
        "VFIO_IOMMU_SPAPR_TCE_GET_INFO: the kernel reported an empty window");
  }
  SpaprTceInfo out;
  out.dma32_window = {Iova(info.dma32_window_start),
                      Iova(uint64_t{info.dma32_window_start} + info.dma32_window_size - 1)};
  out.has_ddw = (info.flags & VFIO_IOMMU_SPAPR_INFO_DDW) != 0;
  if (out.has_ddw) {
    out.ddw_page_sizes = info.ddw.pgsizes;
    out.max_dynamic_windows = info.ddw.max_dynamic_windows_supported;
    out.max_levels = info.ddw.levels;
  }
  return out;
}

absl::StatusOr<Iova> VfioContainer::CreateDmaWindow(uint32_t page_shift, uint64_t window_size,
                                                    uint32_t levels) {
  const std::string what = absl::StrCat("VFIO_IOMMU_SPAPR_TCE_CREATE page_shift=", page_shift,
                                        " window_size=", Hex(window_size), " levels=", levels);
  if (type_ != IommuType::kSpaprTceV2) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": the container is not sPAPR TCE v2"));
  }
  if (page_shift < 12 || page_shift > 63 || window_size == 0 ||
      window_size % (uint64_t{1} << page_shift) != 0 || levels == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what,
        ": the window must be a non-zero multiple of a page of at least 4 KiB, in >= 1 level"));
  }
  vfio_iommu_spapr_tce_create create{};
  create.argsz = sizeof(create);
  create.page_shift = page_shift;
  create.window_size = window_size;
  create.levels = levels;
  RETURN_IF_ERROR(WithDmaHint(VfioIoctl(sys_, fd_.get(), VFIO_IOMMU_SPAPR_TCE_CREATE,
                                        reinterpret_cast<uintptr_t>(&create), what)
                                  .status()));
  windows_[create.start_addr] = window_size;
  return Iova(create.start_addr);
}

absl::Status VfioContainer::RemoveDmaWindow(Iova start) {
  const std::string what = absl::StrCat("VFIO_IOMMU_SPAPR_TCE_REMOVE start=", start.ToString());
  if (!windows_.count(start.raw())) {
    return absl::NotFoundError(absl::StrCat(what, ": no DMA window starts there"));
  }
  vfio_iommu_spapr_tce_remove remove{};
  remove.argsz = sizeof(remove);
  remove.start_addr = start.raw();
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), VFIO_IOMMU_SPAPR_TCE_REMOVE,
                            reinterpret_cast<uintptr_t>(&remove), what)
                      .status());
  windows_.erase(start.raw());
  return absl::OkStatus();
}

std::string VfioContainer::name() const {
  return absl::StrCat(type_ ? IommuTypeName(*type_) : "unconfigured", " container");
}

absl::StatusOr<IommuCapabilities> VfioContainer::GetCapabilities() const {
  if (!type_) {
    return absl::FailedPreconditionError(
        "VFIO container capabilities: no IOMMU model yet (attach a group, then SetIommu)");
  }
  if (*type_ != IommuType::kSpaprTceV2) return GetType1Info();
  ASSIGN_OR_RETURN(SpaprTceInfo info, GetSpaprInfo());
  IommuCapabilities caps;
  caps.needs_pre_registration = true;
  caps.page_sizes = info.has_ddw ? (info.ddw_page_sizes | 0x1000) : 0x1000;
  for (auto [start, size] : windows_) {
    caps.valid_iovas.push_back({Iova(start), Iova(start + (size - 1))});
  }
  return caps;
}

absl::Status VfioContainer::RegisterMemory(const GuestRegion& region, uint64_t offset,
                                           uint64_t size) {
  if (type_ != IommuType::kSpaprTceV2) return DmaBackend::RegisterMemory(region, offset, size);
  const std::string what =
      absl::StrCat("VFIO_IOMMU_SPAPR_REGISTER_MEMORY offset=", Hex(offset), " size=", Hex(size));
  RETURN_IF_ERROR(CheckDmaArgs([&] { return what; }, Iova(0), &region, offset, size));
  const uint64_t vaddr = reinterpret_cast<uintptr_t>(region.host_address() + offset);
  vfio_iommu_spapr_register_memory reg{};
  reg.argsz = sizeof(reg);
  reg.vaddr = vaddr;
  reg.size = size;
  RETURN_IF_ERROR(WithDmaHint(VfioIoctl(sys_, fd_.get(), VFIO_IOMMU_SPAPR_REGISTER_MEMORY,
                                        reinterpret_cast<uintptr_t>(&reg), what)
                                  .status()));
  registered_[vaddr] = size;
  return absl::OkStatus();
}

absl::Status VfioContainer::UnregisterMemory(const GuestRegion& region, uint64_t offset,
                                             uint64_t size) {
  if (type_ != IommuType::kSpaprTceV2) return DmaBackend::UnregisterMemory(region, offset, size);
  const std::string what =
      absl::StrCat("VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY offset=", Hex(offset), " size=", Hex(size));
  RETURN_IF_ERROR(CheckDmaArgs([&] { return what; }, Iova(0), &region, offset, size));
  const uint64_t vaddr = reinterpret_cast<uintptr_t>(region.host_address() + offset);
  auto it = registered_.find(vaddr);
  if (it == registered_.end() || it->second != size) {
    return absl::NotFoundError(
        absl::StrCat(what,
                     ": no registration of exactly this memory (unregister what was "
                     "registered, as registered)"));
  }
  vfio_iommu_spapr_register_memory reg{};
  reg.argsz = sizeof(reg);
  reg.vaddr = vaddr;
  reg.size = size;
  RETURN_IF_ERROR(VfioIoctl(sys_, fd_.get(), VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY,
                            reinterpret_cast<uintptr_t>(&reg), what)
                      .status());
  registered_.erase(it);
  return absl::OkStatus();
}

absl::Status VfioContainer::CheckSpaprMap(const std::string& what, Iova iova,
                                          const GuestRegion& region, uint64_t offset,
                                          uint64_t size) const {
  const uint64_t vaddr = reinterpret_cast<uintptr_t>(region.host_address() + offset);
  auto reg = registered_.upper_bound(vaddr);
  if (reg == registered_.begin() || std::prev(reg)->first + std::prev(reg)->second < vaddr + size) {
    return absl::FailedPreconditionError(absl::StrCat(
        what,
        ": the memory is not pre-registered (sPAPR TCE v2 maps only registered memory: "
        "register a pre-registration listener on system memory first)"));
  }
  auto win = windows_.upper_bound(iova.raw());
  if (win == windows_.begin() ||
      !IovaRange{Iova(std::prev(win)->first),
                 Iova(std::prev(win)->first + std::prev(win)->second - 1)}
           .Contains(iova, size)) {
    return absl::OutOfRangeError(
        absl::StrCat(what, ": outside every DMA window (create one with CreateDmaWindow)"));
  }
  return absl::OkStatus();
}

// MapDma and UnmapDma are hot (a vIOMMU shadow makes one per guest page): their messages are
// formatted only on error.
absl::Status VfioContainer::MapDma(Iova iova, const GuestRegion& region, uint64_t offset,
                                   uint64_t size, bool writable) {
  auto what = [&] { return absl::StrCat("VFIO_IOMMU_MAP_DMA ", DmaRange(iova, size)); };
  RETURN_IF_ERROR(CheckDmaArgs(what, iova, &region, offset, size));
  if (!type_) {
    return absl::FailedPreconditionError(absl::StrCat(what(), ": no IOMMU model set yet"));
  }
  if (type_ == IommuType::kSpaprTceV2) {
    RETURN_IF_ERROR(CheckSpaprMap(what(), iova, region, offset, size));
  }
  vfio_iommu_type1_dma_map map{};
  map.argsz = sizeof(map);
  map.flags = VFIO_DMA_MAP_FLAG_READ | (writable ? VFIO_DMA_MAP_FLAG_WRITE : 0u);
  map.vaddr = reinterpret_cast<uintptr_t>(region.host_address() + offset);
  map.iova = iova.raw();
  map.size = size;
  const int ret = sys_.Ioctl(fd_.get(), VFIO_IOMMU_MAP_DMA, reinterpret_cast<uintptr_t>(&map));
  if (ret < 0) [[unlikely]] {
    return WithDmaHint(ErrnoStatus(-ret, what()));
  }
  return absl::OkStatus();
}

absl::Status VfioContainer::UnmapDma(Iova iova, uint64_t size) {
  auto what = [&] { return absl::StrCat("VFIO_IOMMU_UNMAP_DMA ", DmaRange(iova, size)); };
  RETURN_IF_ERROR(CheckDmaArgs(what, iova, nullptr, 0, size));
  vfio_iommu_type1_dma_unmap unmap{};
  unmap.argsz = sizeof(unmap);
  unmap.iova = iova.raw();
  unmap.size = size;
  const int ret = sys_.Ioctl(fd_.get(), VFIO_IOMMU_UNMAP_DMA, reinterpret_cast<uintptr_t>(&unmap));
  if (ret < 0) [[unlikely]] {
    return WithDmaHint(ErrnoStatus(-ret, what()));
  }
  // The kernel reports how much it unmapped; nothing means nothing was mapped there.
  if (unmap.size == 0) {
    return absl::NotFoundError(absl::StrCat(what(), ": nothing is mapped there"));
  }
  return absl::OkStatus();
}

}  // namespace vmmkit::vfio
