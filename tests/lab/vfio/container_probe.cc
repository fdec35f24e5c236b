// Lab probe for vfio/ on a real kernel (L1, emulated VT-d): takes an IOMMU group number, attaches
// the group to a VfioContainer with raw ioctls (VfioGroup comes next), sets the type1 IOMMU, reads
// the IOMMU info, maps a guest region for DMA, rejects an overlapping map, and unmaps it.
// Prints one "probe: PASS/FAIL ..." line per check; exits non-zero on any failure.
#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "vfio/container.h"

namespace {

int failures = 0;
void Check(bool ok, const std::string& what, const std::string& detail = "") {
  std::printf("probe: %s %s%s%s\n", ok ? "PASS" : "FAIL", what.c_str(), detail.empty() ? "" : ": ",
              detail.c_str());
  if (!ok) ++failures;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace vmmkit;  // NOLINT: a short test program.
  if (argc != 2) {
    std::fprintf(stderr, "usage: container_probe GROUP\n");
    return 2;
  }
  auto container = vfio::VfioContainer::Open();
  Check(container.ok(), "open /dev/vfio/vfio", container.status().ToString());
  if (!container.ok()) return 1;
  auto v2 = (*container)->CheckExtension(VFIO_TYPE1v2_IOMMU);
  Check(v2.ok() && *v2, "VFIO_CHECK_EXTENSION(TYPE1v2)");
  const std::string group_path = std::string("/dev/vfio/") + argv[1];
  const int group = ::open(group_path.c_str(), O_RDWR | O_CLOEXEC);
  Check(group >= 0, "open " + group_path, group >= 0 ? "" : std::strerror(errno));
  vfio_group_status status{.argsz = sizeof(status), .flags = 0};
  Check(::ioctl(group, VFIO_GROUP_GET_STATUS, &status) == 0 &&
            (status.flags & VFIO_GROUP_FLAGS_VIABLE),
        "group is viable");
  int cfd = (*container)->fd();
  Check(::ioctl(group, VFIO_GROUP_SET_CONTAINER, &cfd) == 0, "VFIO_GROUP_SET_CONTAINER");

  auto type = (*container)->SetType1Iommu();
  Check(type.ok() && *type == vfio::IommuType::kType1v2, "SetType1Iommu picks Type1v2",
        type.status().ToString());
  auto info = (*container)->GetIommuInfo();
  Check(info.ok() && (info->page_sizes & 0x1000), "GetIommuInfo reports 4 KiB pages",
        info.ok() ? "" : info.status().ToString());
  if (info.ok()) {
    std::printf("probe: page sizes %#lx, %zu valid IOVA ranges, DMA mappings available: %s\n",
                static_cast<unsigned long>(info->page_sizes), info->valid_iovas.size(),
                info->dma_mappings_available ? std::to_string(*info->dma_mappings_available).c_str()
                                             : "not reported");
    for (const auto& r : info->valid_iovas) {
      std::printf("probe:   IOVA range %s-%s\n", r.start.ToString().c_str(),
                  r.last.ToString().c_str());
    }
  }
  auto ram = GuestRegion::Create(GuestAddress(0), 1 << 20);
  Check(ram.ok(), "guest region");
  if (!ram.ok()) return 1;
  absl::Status s = (*container)->MapDma(Iova(0x100000), **ram, 0, 1 << 20, true);
  Check(s.ok(), "MapDma 1 MiB at IOVA 0x100000", s.ToString());
  s = (*container)->MapDma(Iova(0x180000), **ram, 0, 0x1000, true);
  Check(s.code() == absl::StatusCode::kAlreadyExists, "an overlapping MapDma is ALREADY_EXISTS",
        s.ToString());
  s = (*container)->UnmapDma(Iova(0x100000), 1 << 20);
  Check(s.ok(), "UnmapDma", s.ToString());
  s = (*container)->UnmapDma(Iova(0x100000), 1 << 20);
  Check(s.code() == absl::StatusCode::kNotFound, "a second UnmapDma is NOT_FOUND", s.ToString());
  std::printf("probe: %d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
