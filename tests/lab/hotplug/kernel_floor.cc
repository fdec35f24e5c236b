// kernel_floor: the L1 kernel's own share of a vfio-pci hot-add, timed with no VMM around it: the
// two calls that any VMM's hot-add makes and none can avoid, each alone, N rounds:
//   open: VFIO_GROUP_GET_DEVICE_FD (vfio-pci wakes the device, enables and resets it: mostly waits)
//   map:  VFIO_IOMMU_MAP_DMA of guest-RAM-sized memory, backed as the VMMs back it (type1 pins
//         every page: on anonymous memory the kernel walks the page tables once per 4 KiB page)
// and their inverses (unmap, close); then the same two calls made as vmm makes them, the map on a
// helper thread while the caller opens (`both`: the wall time of the pair, and of the map and the
// open within it; the CPU figure printed for `both` is the caller's alone, the open and the wait).
// Every round times all of them, so L0's drift weighs on each alike: whether overlapping the two
// beats making them one after the other is `both` against `open + map`. The hotplug benchmark runs
// it in the same L1 session as the VMMs it compares, so that its report can show how much of either
// VMM's AddDevice / device_add is this floor, which no VMM can go below. Usage: kernel_floor
// EDU_BDF MIB anonymous|hugetlb ROUNDS. Prints one line; exits 1 on an error.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "base/alongside.h"
#include "base/status_macros.h"
#include "memory/guest_region.h"
#include "tests/lab/vfio/own_container.h"

namespace vmmkit {
namespace {

struct Times {
  std::vector<double> wall_ms, cpu_ms;
  std::string P50() const {
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    return absl::StrFormat("p50 %.1f ms (CPU %.1f ms)", median(wall_ms), median(cpu_ms));
  }
};

double ThreadCpuMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

absl::Status Timed(Times& times, const std::function<absl::Status()>& call) {
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = ThreadCpuMs();
  RETURN_IF_ERROR(call());
  times.cpu_ms.push_back(ThreadCpuMs() - cpu0);
  times.wall_ms.push_back(
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  return absl::OkStatus();
}

absl::StatusOr<std::string> Measure(const std::string& bdf, uint64_t mib,
                                    const std::string& backing, int rounds) {
  if (mib == 0 || rounds < 1 || (backing != "anonymous" && backing != "hugetlb")) {
    return absl::InvalidArgumentError("usage: kernel_floor EDU_BDF MIB anonymous|hugetlb ROUNDS");
  }
  const uint64_t size = mib << 20;
  GuestRegionOptions options{.backing = GuestRegionBacking::kAnonymous};
  if (backing == "hugetlb") {
    options = {.backing = GuestRegionBacking::kMemfdHugetlb, .prefault = true};
  }
  ASSIGN_OR_RETURN(std::shared_ptr<GuestRegion> ram,
                   GuestRegion::Create(GuestAddress(0), size, options));
  // Touched, as a running guest's RAM is after the first hot-add has faulted it in: the floor of
  // the adds after the first, whose p50 the benchmark compares.
  std::fill(ram->host_address(), ram->host_address() + size, 1);
  ASSIGN_OR_RETURN(vfio::OwnContainerDevice edu, vfio::OpenInOwnContainer(bdf));
  auto close_device = [&] {
    edu.device.reset();  // vfio-pci resets it as its last fd closes.
    return absl::OkStatus();
  };
  auto open_device = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(edu.device, edu.group->GetDevice(bdf));
    return absl::OkStatus();
  };
  auto map_ram = [&] { return edu.container->MapDma(Iova(0), *ram, 0, size, true); };
  auto unmap_ram = [&] { return edu.container->UnmapDma(Iova(0), size); };
  Times open, map, unmap, close, both, both_map, both_open;
  for (int i = 0; i < rounds; ++i) {
    RETURN_IF_ERROR(Timed(close, close_device));
    RETURN_IF_ERROR(Timed(open, open_device));
    RETURN_IF_ERROR(Timed(map, map_ram));
    RETURN_IF_ERROR(Timed(unmap, unmap_ram));
    RETURN_IF_ERROR(close_device());
    absl::Status mapped;
    RETURN_IF_ERROR(Timed(both, [&] {
      Alongside mapper([&] { mapped = Timed(both_map, map_ram); });
      absl::Status opened = Timed(both_open, open_device);
      mapper.Join();
      return opened.ok() ? mapped : opened;
    }));
    RETURN_IF_ERROR(unmap_ram());
  }
  return absl::StrFormat(
      "kernel_floor: %s %d MiB, %d rounds: open %s, map %s; unmap %s, close %s; both (the map "
      "alongside the open) %s: map %s, open %s",
      backing, mib, rounds, open.P50(), map.P50(), unmap.P50(), close.P50(), both.P50(),
      both_map.P50(), both_open.P50());
}

}  // namespace
}  // namespace vmmkit

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: kernel_floor EDU_BDF MIB anonymous|hugetlb ROUNDS\n");
    return 2;
  }
  absl::StatusOr<std::string> line =
      vmmkit::Measure(argv[1], std::strtoull(argv[2], nullptr, 10), argv[3], std::atoi(argv[4]));
  if (!line.ok()) {
    std::fprintf(stderr, "kernel_floor: %s\n", line.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", line->c_str());
  return 0;
}
