// Lab benchmark run inside an L2 guest: the latency of one VFIO_IOMMU_MAP_DMA +
// VFIO_IOMMU_UNMAP_DMA pair on the guest's own VFIO (type1 on the guest's IOMMU), for a 4 KiB
// and a 2 MiB huge page, the way a userspace driver (DPDK, SPDK) maps and unmaps its buffers. Under
// a VMM with a caching-mode vIOMMU each map and each unmap is a guest IOMMU table change, an
// invalidation trapped by the VMM and a host IOMMU update. Static, raw ioctls: it runs in any
// guest the same way (vmm's and QEMU's, for the comparison).
// Usage: vfio_map_latency EDU_BDF PAIRS
// Prints: "latency: SIZE pairs N p50 X us p99 Y us" for SIZE 4096 and 2097152.
#include <fcntl.h>
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "vfio_map_latency: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

int GroupOf(const std::string& bdf) {
  char link[256];
  const std::string path = "/sys/bus/pci/devices/" + bdf + "/iommu_group";
  const ssize_t n = readlink(path.c_str(), link, sizeof(link) - 1);
  if (n < 0) Die("iommu_group link");
  link[n] = 0;
  const char* slash = std::strrchr(link, '/');
  return std::atoi(slash != nullptr ? slash + 1 : link);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: vfio_map_latency EDU_BDF PAIRS\n");
    return 2;
  }
  const int pairs = std::atoi(argv[2]);
  const int container = open("/dev/vfio/vfio", O_RDWR);
  if (container < 0) Die("open /dev/vfio/vfio");
  const std::string group_path = "/dev/vfio/" + std::to_string(GroupOf(argv[1]));
  const int group = open(group_path.c_str(), O_RDWR);
  if (group < 0) Die("open the group");
  if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) != 0) Die("VFIO_GROUP_SET_CONTAINER");
  if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) != 0) Die("VFIO_SET_IOMMU");
  const int device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, argv[1]);
  if (device < 0) Die("VFIO_GROUP_GET_DEVICE_FD");

  for (const uint64_t size : {uint64_t{4096}, uint64_t{2} << 20}) {
    // Memory aligned to its size, touched, so the map pins resident pages. The 2 MiB page is a
    // huge page, as a DPDK program's buffers are (hugetlbfs; the guest's pool must have one).
    const bool huge = size > 4096;
    void* mem = mmap(nullptr, huge ? size : 2 * size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | (huge ? MAP_HUGETLB : 0), -1, 0);
    if (mem == MAP_FAILED) Die(huge ? "mmap a 2 MiB huge page" : "mmap");
    const uint64_t va = (reinterpret_cast<uint64_t>(mem) + size - 1) & ~(size - 1);
    std::memset(reinterpret_cast<void*>(va), 1, size);
    vfio_iommu_type1_dma_map map{};
    map.argsz = sizeof(map);
    map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    map.vaddr = va;
    map.iova = uint64_t{1} << 30;
    map.size = size;
    vfio_iommu_type1_dma_unmap unmap{};
    unmap.argsz = sizeof(unmap);
    unmap.iova = map.iova;
    unmap.size = size;
    std::vector<double> us;
    for (int i = 0; i < pairs + 20; ++i) {  // The first 20 warm up.
      const auto t0 = std::chrono::steady_clock::now();
      if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map) != 0) Die("VFIO_IOMMU_MAP_DMA");
      if (ioctl(container, VFIO_IOMMU_UNMAP_DMA, &unmap) != 0) Die("VFIO_IOMMU_UNMAP_DMA");
      const auto t1 = std::chrono::steady_clock::now();
      if (i >= 20) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    std::sort(us.begin(), us.end());
    std::printf("latency: %llu pairs %d p50 %.1f us p99 %.1f us\n",
                static_cast<unsigned long long>(size), pairs, us[us.size() / 2],
                us[std::min(us.size() - 1, us.size() * 99 / 100)]);
    munmap(mem, huge ? size : 2 * size);
  }
  close(device);
  close(group);
  close(container);
  return 0;
}
