// Lab benchmark for vfio/ DMA mapping on a real type1 IOMMU (L1's emulated VT-d, edu bound to
// vfio-pci). Prints:
//   - VFIO_IOMMU_MAP_DMA + VFIO_IOMMU_UNMAP_DMA pairs per second, 4 KiB and 2 MiB, through
//     VfioContainer and through raw ioctls on the same container, interleaved rounds, medians,
//     and the ratio library/raw;
//   - 256 MiB of guest RAM mapped whole: 2 MiB pages with the IOVA congruent to the host address
//     (IOMMU superpages possible), the same off by 4 KiB, 4 KiB pages, and hugetlb; then
//     never-touched memory (the map faults it in), in 2 MiB and in 4 KiB pages;
//   - the DMA mapping listener's time to map (and unmap) a 1 GiB guest, next to one raw 1 GiB
//     MAP_DMA/UNMAP_DMA.
// Usage: dma_bench EDU_BDF
#include <linux/vfio.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "memory/address_space.h"
#include "vfio/container.h"
#include "vfio/device.h"
#include "vfio/dma_listener.h"
#include "vfio/group.h"

namespace vmmkit::vfio {
namespace {

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

[[noreturn]] void Die(const absl::Status& s, const char* what) {
  std::fprintf(stderr, "dma_bench: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

// Map+unmap pairs per second through the library.
double LibraryRate(VfioContainer& c, const GuestRegion& ram, uint64_t size, int n) {
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    if (auto s = c.MapDma(Iova(0x1000000), ram, 0, size, true); !s.ok()) Die(s, "MapDma");
    if (auto s = c.UnmapDma(Iova(0x1000000), size); !s.ok()) Die(s, "UnmapDma");
  }
  return n / Seconds(t0, Clock::now());
}

// The same through raw ioctls.
double RawRate(int fd, const GuestRegion& ram, uint64_t size, int n) {
  const auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    vfio_iommu_type1_dma_map map{};
    map.argsz = sizeof(map);
    map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    map.vaddr = reinterpret_cast<uintptr_t>(ram.host_address());
    map.iova = 0x1000000;
    map.size = size;
    vfio_iommu_type1_dma_unmap unmap{};
    unmap.argsz = sizeof(unmap);
    unmap.iova = 0x1000000;
    unmap.size = size;
    if (::ioctl(fd, VFIO_IOMMU_MAP_DMA, &map) != 0 ||
        ::ioctl(fd, VFIO_IOMMU_UNMAP_DMA, &unmap) != 0) {
      Die(absl::ErrnoToStatus(errno, "raw ioctl"), "raw map/unmap");
    }
  }
  return n / Seconds(t0, Clock::now());
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace
}  // namespace vmmkit::vfio

int main(int argc, char** argv) {
  using namespace vmmkit;        // NOLINT: a short benchmark program.
  using namespace vmmkit::vfio;  // NOLINT
  if (argc != 2) {
    std::fprintf(stderr, "usage: dma_bench EDU_BDF\n");
    return 2;
  }
  auto group_id = VfioGroup::GroupOfDevice(argv[1]);
  if (!group_id.ok()) Die(group_id.status(), "group");
  auto container = VfioContainer::Open();
  if (!container.ok()) Die(container.status(), "container");
  auto group = VfioGroup::Open(*group_id);
  if (!group.ok()) Die(group.status(), "group");
  if (auto s = (*group)->SetContainer(*container); !s.ok()) Die(s, "set container");
  if (auto t = (*container)->SetType1Iommu(); !t.ok()) Die(t.status(), "set IOMMU");
  VfioContainer& c = **container;

  GuestRegionOptions thp;
  thp.backing = GuestRegionBacking::kAnonymous;
  auto ram = GuestRegion::Create(GuestAddress(0x1000000), 2 << 20, thp);
  if (!ram.ok()) Die(ram.status(), "RAM");
  std::fill((*ram)->host_address(), (*ram)->host_address() + (*ram)->size(), 1);  // Fault in.

  std::printf("bench: VFIO_IOMMU_MAP_DMA + UNMAP_DMA pairs/s (median of 5 interleaved rounds)\n");
  for (auto [size, n] : {std::pair<uint64_t, int>{4096, 2000}, {2 << 20, 300}}) {
    std::vector<double> lib, raw;
    LibraryRate(c, **ram, size, n / 10);  // Warm up.
    for (int round = 0; round < 5; ++round) {
      lib.push_back(LibraryRate(c, **ram, size, n));
      raw.push_back(RawRate(c.fd(), **ram, size, n));
    }
    const double l = Median(lib), r = Median(raw);
    std::printf("bench: %-6s library %9.0f/s  raw ioctl %9.0f/s  ratio %.3f\n",
                size == 4096 ? "4 KiB" : "2 MiB", l, r, l / r);
  }

  // 256 MiB of touched guest RAM mapped and unmapped whole, by how the host backs it: where the
  // IOVA and the host address agree modulo 2 MiB, the IOMMU can use superpages (if it has them).
  {
    constexpr uint64_t kSize = 256 << 20;
    auto thp_ram = GuestRegion::Create(GuestAddress(0), kSize, thp);
    auto small_ram = GuestRegion::Create(GuestAddress(0), kSize, thp);
    if (!thp_ram.ok() || !small_ram.ok()) Die(thp_ram.status(), "256 MiB RAM");
    ::madvise((*small_ram)->host_address(), kSize, MADV_NOHUGEPAGE);
    for (auto* r : {&*thp_ram, &*small_ram}) {
      std::fill((*r)->host_address(), (*r)->host_address() + kSize, 1);
    }
    // hugetlb pages (the scenario fills the pool), allocated now: type1 pins them 2 MiB at a time,
    // where on anonymous memory the kernel walks the page tables once per 4 KiB page, huge or not.
    auto huge_ram = GuestRegion::Create(
        GuestAddress(0), kSize, {.backing = GuestRegionBacking::kMemfdHugetlb, .prefault = true});
    if (!huge_ram.ok()) Die(huge_ram.status(), "256 MiB hugetlb RAM");
    struct Case {
      const char* name;
      const GuestRegion* ram;
      uint64_t iova;
    };
    std::printf("bench: 256 MiB of guest RAM, one MapDma / UnmapDma (median of 3)\n");
    for (const Case& k : {Case{"2 MiB pages, IOVA congruent", thp_ram->get(), 0},
                          Case{"2 MiB pages, IOVA off by 4 KiB", thp_ram->get(), 0x1000},
                          Case{"4 KiB pages", small_ram->get(), 0},
                          Case{"hugetlb 2 MiB pages", huge_ram->get(), 0}}) {
      std::vector<double> map, unmap;
      for (int i = 0; i < 3; ++i) {
        const auto a = Clock::now();
        if (auto s = c.MapDma(Iova(k.iova), *k.ram, 0, kSize, true); !s.ok()) Die(s, "map 256");
        const auto b = Clock::now();
        if (auto s = c.UnmapDma(Iova(k.iova), kSize); !s.ok()) Die(s, "unmap 256");
        map.push_back(1e3 * Seconds(a, b));
        unmap.push_back(1e3 * Seconds(b, Clock::now()));
      }
      std::printf("bench:   %-32s map %7.1f ms  unmap %7.1f ms\n", k.name, Median(map),
                  Median(unmap));
    }
    // Never touched: the map faults the memory in (zeroed) to pin it, as a first hotplug does.
    for (bool huge : {true, false}) {
      auto fresh = GuestRegion::Create(GuestAddress(0), kSize, thp);
      if (!fresh.ok()) Die(fresh.status(), "256 MiB fresh RAM");
      if (!huge) ::madvise((*fresh)->host_address(), kSize, MADV_NOHUGEPAGE);
      const auto a = Clock::now();
      if (auto s = c.MapDma(Iova(0), **fresh, 0, kSize, true); !s.ok()) Die(s, "map fresh");
      const auto b = Clock::now();
      if (auto s = c.UnmapDma(Iova(0), kSize); !s.ok()) Die(s, "unmap fresh");
      std::printf("bench:   %-32s map %7.1f ms  unmap %7.1f ms\n",
                  huge ? "never touched, 2 MiB pages" : "never touched, 4 KiB pages",
                  1e3 * Seconds(a, b), 1e3 * Seconds(b, Clock::now()));
    }
  }

  // A 1 GiB guest through the listener vs one raw map of the same memory.
  auto big = GuestRegion::Create(GuestAddress(0), 1ull << 30, thp);
  if (!big.ok()) Die(big.status(), "1 GiB RAM");
  std::fill((*big)->host_address(), (*big)->host_address() + (*big)->size(), 1);
  auto t0 = Clock::now();
  if (auto s = c.MapDma(Iova(0), **big, 0, (*big)->size(), true); !s.ok()) Die(s, "raw 1 GiB");
  auto t1 = Clock::now();
  if (auto s = c.UnmapDma(Iova(0), (*big)->size()); !s.ok()) Die(s, "raw 1 GiB unmap");
  auto t2 = Clock::now();
  AddressSpace space("guest");
  DmaMappingListener mapping(c);
  if (auto s = space.AddRam("ram", *big); !s.ok()) Die(s, "add RAM");
  auto t3 = Clock::now();
  if (auto s = space.RegisterListener(&mapping); !s.ok()) Die(s, "listener map");
  auto t4 = Clock::now();
  if (auto s = space.UnregisterListener(&mapping); !s.ok()) Die(s, "listener unmap");
  auto t5 = Clock::now();
  std::printf(
      "bench: 1 GiB guest: listener map %.1f ms, unmap %.1f ms; "
      "one MapDma of 1 GiB %.1f ms, unmap %.1f ms; listener/direct map ratio %.3f\n",
      1e3 * Seconds(t3, t4), 1e3 * Seconds(t4, t5), 1e3 * Seconds(t0, t1), 1e3 * Seconds(t1, t2),
      Seconds(t3, t4) / Seconds(t0, t1));
  return 0;
}
