// The caching-mode path of a guest VT-d map and unmap, on a fake host IOMMU. Run:
//   bazel run -c opt //iommu:vtd_benchmark
//   BM_GuestPageMapUnmap/{4096,2097152}: the guest writes a leaf entry, queues a page-selective
//     IOTLB invalidation and a wait descriptor and writes the queue tail (what Linux's
//     intel-iommu does per dma_map with caching mode); the unit parses the queue, walks the
//     guest's table, diffs against what it shadowed and maps through VfioShadow; then the same
//     for the unmap. One item = one map + one unmap.
//   BM_ShadowOnlyMapUnmap: the peer, measured in the same run: the same two notifications given
//     to the shadow directly. The difference is what the VT-d model adds (queue, walk, diff).
// After the runs it prints the ratio model path / shadow only for 4 KiB pages.
#include <cstdio>
#include <map>
#include <string>

#include "benchmark/benchmark.h"
#include "iommu/shadow.h"
#include "iommu/testing/fake_dma_backend.h"
#include "iommu/vtd/unit.h"
#include "memory/address_space.h"

namespace vmmkit::iommu::vtd {
namespace {

constexpr uint64_t kRam = 64 << 20;
constexpr uint64_t kRoot = 0x100000, kContext = 0x101000, kL3 = 0x102000, kL2 = 0x103000,
                   kL1 = 0x104000, kQueue = 0x105000, kStatus = 0x106000;
constexpr uint16_t kSid = 0x0018;
constexpr uint64_t kIova = 0x40000000;  // In slot 1 of the top table.

std::map<std::string, double> g_ns_per_item;  // Benchmark name -> ns per item.

class Rig {
 public:
  Rig() : system_("system") {
    region_ = *GuestRegion::Create(GuestAddress(0), kRam);
    ram_.emplace(*GuestMemory::Create({region_}));
    (void)system_.AddRam("ram", region_);
    shadow_ = *VfioShadow::Create(host_, system_);
    unit_ = std::make_unique<RemappingUnit>(*ram_, UnitOptions{});
    Put(kRoot, kContext | 1);
    Put(kContext + 16 * (kSid & 0xff), kL3 | 1);
    Put(kContext + 16 * (kSid & 0xff) + 8, 1 | (1 << 8));
    Put(kL3 + 8 * 1, kL2 | 3);
    Put(kL2, kL1 | 3);
    Write32(kRegIqt, 0);
    Write64(kRegIqa, kQueue);
    Write32(kRegGcmd, kGcmdQie);
    Write64(kRegRtaddr, kRoot);
    Write32(kRegGcmd, kGcmdQie | kGcmdSrtp);
    Write32(kRegGcmd, kGcmdQie | kGcmdTe);
    (void)unit_->RegisterNotifier(kSid, shadow_.get());
  }
  ~Rig() { (void)unit_->UnregisterNotifier(kSid, shadow_.get()); }

  void Put(uint64_t gpa, uint64_t v) { (void)ram_->WriteObj(GuestAddress(gpa), v); }
  void Write32(uint64_t off, uint32_t v) {
    unit_->Write(off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  void Write64(uint64_t off, uint64_t v) {
    unit_->Write(off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 8));
  }
  // Linux's qi_submit_sync of one IOTLB page invalidation: descriptor, wait, tail.
  void Psi(uint64_t iova, uint64_t am) {
    Put(kQueue + 16 * tail_, (uint64_t{1} << 16) | 0x32);
    Put(kQueue + 16 * tail_ + 8, iova | am);
    tail_ = (tail_ + 1) % 256;
    Put(kQueue + 16 * tail_, 0x0000000200000025ull);
    Put(kQueue + 16 * tail_ + 8, kStatus);
    tail_ = (tail_ + 1) % 256;
    Write32(kRegIqt, tail_ << 4);
  }
  // Maps (or, with `present` false, unmaps) one page of `size` at kIova -> 0x800000.
  void Page(uint64_t size, bool present) {
    const uint64_t entry = present ? (0x800000 | 3 | (size > 0x1000 ? 0x80 : 0)) : 0;
    if (size == 0x1000) {
      Put(kL1, entry);
      Psi(kIova, 0);
    } else {
      Put(kL2 + 8, present ? entry : 0);  // The second 2 MiB slot.
      Psi(kIova + 0x200000, 9);
    }
  }
  VfioShadow& shadow() { return *shadow_; }
  testing::FakeDmaBackend& host() { return host_; }

 private:
  std::shared_ptr<GuestRegion> region_;
  std::optional<GuestMemory> ram_;
  AddressSpace system_;
  testing::FakeDmaBackend host_;
  std::unique_ptr<VfioShadow> shadow_;
  std::unique_ptr<RemappingUnit> unit_;
  uint32_t tail_ = 0;
};

void BM_GuestPageMapUnmap(benchmark::State& state) {
  Rig rig;
  const uint64_t size = static_cast<uint64_t>(state.range(0));
  for (auto _ : state) {
    rig.Page(size, true);
    rig.Page(size, false);
  }
  if (rig.host().mappings.size() != 0 || rig.shadow().map_calls() != rig.shadow().unmap_calls() ||
      rig.shadow().map_calls() < static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("the shadow did not follow the guest");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GuestPageMapUnmap)->Arg(0x1000)->Arg(0x200000);

void BM_ShadowOnlyMapUnmap(benchmark::State& state) {
  Rig rig;
  const IommuEvent map[] = {
      {IommuEventType::kMap, {Iova(0x10000), 0x1000, 0x800000, IommuAccess::kReadWrite}}};
  const IommuEvent unmap[] = {{IommuEventType::kUnmap, map[0].mapping}};
  for (auto _ : state) {
    benchmark::DoNotOptimize(rig.shadow().Notify(map));
    benchmark::DoNotOptimize(rig.shadow().Notify(unmap));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ShadowOnlyMapUnmap);

// Keeps each run's time per item, to print the ratio after the table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.iterations > 0) g_ns_per_item[r.benchmark_name()] = r.GetAdjustedRealTime();
    }
  }
};

}  // namespace
}  // namespace vmmkit::iommu::vtd

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  vmmkit::iommu::vtd::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  auto& t = vmmkit::iommu::vtd::g_ns_per_item;
  const auto model = t.find("BM_GuestPageMapUnmap/4096");
  const auto shadow = t.find("BM_ShadowOnlyMapUnmap");
  if (model != t.end() && shadow != t.end() && shadow->second > 0) {
    std::printf(
        "vtd_benchmark: 4 KiB map+unmap through the VT-d model %.0f ns, shadow only %.0f ns,"
        " ratio %.2f\n",
        model->second, shadow->second, model->second / shadow->second);
  }
  benchmark::Shutdown();
  return 0;
}
