// iommu/ benchmarks. Run: bazel run -c opt //iommu:iommu_benchmark
//   BM_Insert/Lookup/Remove<IovaTree | StdMapTree>/N: the B-tree IovaTree against the same
//     interval map on std::map, at 10^4, 10^5 and 10^6 mappings (compare the pairs: the ratio is
//     StdMapTree time / IovaTree time);
//   BM_TranslateIotlbHit: IommuAddressSpace::Translate when the IOTLB holds the page;
//   BM_ShadowMapUnmap: one guest page mapped and unmapped through a VfioShadow into a fake
//     container (the notifier path a caching-mode invalidation takes).
#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "benchmark/benchmark.h"
#include "iommu/iommu.h"
#include "iommu/iova_tree.h"
#include "iommu/shadow.h"
#include "iommu/testing/fake_dma_backend.h"
#include "iommu/testing/page_table_iommu.h"
#include "irq/msi_routes.h"
#include "kvm/kvm.h"
#include "kvm/testing/tiny_guest.h"
#include "kvm/vm.h"
#include "memory/address_space.h"

namespace vmmkit::iommu {
namespace {

constexpr uint64_t kPage = 0x1000;

// The baseline: the same interval-map operations on std::map.
class StdMapTree {
 public:
  bool Insert(const IovaMapping& m) {
    auto next = map_.upper_bound(m.last().raw());
    if (next != map_.begin() && std::prev(next)->second.last() >= m.iova) return false;
    map_.emplace(m.iova.raw(), m);
    return true;
  }
  std::optional<IovaMapping> Find(Iova iova) const {
    auto it = map_.upper_bound(iova.raw());
    if (it == map_.begin() || std::prev(it)->second.last() < iova) return std::nullopt;
    return std::prev(it)->second;
  }
  void Remove(Iova iova, uint64_t) { map_.erase(iova.raw()); }

 private:
  std::map<uint64_t, IovaMapping> map_;
};

struct IovaTreeAdapter {
  IovaTree tree;
  bool Insert(const IovaMapping& m) { return tree.Insert(m).ok(); }
  std::optional<IovaMapping> Find(Iova iova) const { return tree.Find(iova); }
  void Remove(Iova iova, uint64_t size) { tree.Remove(iova, size); }
};

// Mappings of one page every other page, in random order (so inserts are not sequential).
std::vector<uint64_t> Shuffled(int64_t n) {
  std::vector<uint64_t> pages(static_cast<size_t>(n));
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = 2 * i * kPage;
  std::shuffle(pages.begin(), pages.end(), std::mt19937_64(1));
  return pages;
}

template <typename Tree>
void BM_Insert(benchmark::State& state) {
  const auto pages = Shuffled(state.range(0));
  for (auto _ : state) {
    Tree t;
    for (uint64_t p : pages)
      benchmark::DoNotOptimize(t.Insert({Iova(p), kPage, p, IommuAccess::kReadWrite}));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

template <typename Tree>
void BM_Lookup(benchmark::State& state) {
  const auto pages = Shuffled(state.range(0));
  Tree t;
  for (uint64_t p : pages) t.Insert({Iova(p), kPage, p, IommuAccess::kReadWrite});
  size_t i = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(t.Find(Iova(pages[i] + 8)));
    if (++i == pages.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}

template <typename Tree>
void BM_Remove(benchmark::State& state) {
  const auto pages = Shuffled(state.range(0));
  for (auto _ : state) {
    state.PauseTiming();
    Tree t;
    for (uint64_t p : pages) t.Insert({Iova(p), kPage, p, IommuAccess::kReadWrite});
    state.ResumeTiming();
    for (uint64_t p : pages) t.Remove(Iova(p), kPage);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

#define TREE_BENCHMARKS(BM)                                                           \
  BENCHMARK_TEMPLATE(BM, IovaTreeAdapter)->Arg(10'000)->Arg(100'000)->Arg(1'000'000); \
  BENCHMARK_TEMPLATE(BM, StdMapTree)->Arg(10'000)->Arg(100'000)->Arg(1'000'000)
TREE_BENCHMARKS(BM_Insert);
TREE_BENCHMARKS(BM_Lookup);
TREE_BENCHMARKS(BM_Remove);

void BM_TranslateIotlbHit(benchmark::State& state) {
  testing::PageTableIommu model;
  model.SetPage(0x1000, kPage, 0x80000, IommuAccess::kReadWrite);
  IommuAddressSpace as("bench", model);
  (void)as.Translate(Iova(0x1000), IommuAccess::kRead);  // Fill the IOTLB.
  for (auto _ : state) benchmark::DoNotOptimize(as.Translate(Iova(0x1234), IommuAccess::kRead));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TranslateIotlbHit);

void BM_ShadowMapUnmap(benchmark::State& state) {
  AddressSpace system("system");
  auto ram = GuestRegion::Create(GuestAddress(0), 1 << 20);
  if (!ram.ok() || !system.AddRam("ram", *ram).ok()) return state.SkipWithError("RAM");
  testing::FakeDmaBackend host;
  auto shadow = VfioShadow::Create(host, system);
  if (!shadow.ok()) return state.SkipWithError("shadow");
  const IommuEvent map[] = {
      {IommuEventType::kMap, {Iova(0x10000), kPage, 0x5000, IommuAccess::kReadWrite}}};
  const IommuEvent unmap[] = {{IommuEventType::kUnmap, map[0].mapping}};
  for (auto _ : state) {
    benchmark::DoNotOptimize((*shadow)->Notify(map));
    benchmark::DoNotOptimize((*shadow)->Notify(unmap));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ShadowMapUnmap);

// Tearing down all MSI vectors of a device on this machine's KVM: one Disable per vector (each a
// table update and an irqfd unbound, each waiting out a grace period in KVM) against DisableDevice
// (one table update, then the irqfds unbound one after the other).
template <bool kTogether>
void BM_MsiTeardown(benchmark::State& state) {
  absl::StatusOr<kvm::Kvm> kvm = kvm::Kvm::Open();
  if (!kvm.ok()) return state.SkipWithError("no usable /dev/kvm");
  absl::StatusOr<kvm::testing::TinyGuest> guest =
      kvm::testing::MakeTinyGuest(*kvm, kvm::testing::CpuMode::kLong, {0xf4}, {.irqchip = true});
  if (!guest.ok()) return state.SkipWithError("no VM with an in-kernel irqchip");
  const auto n = static_cast<uint32_t>(state.range(0));
  std::vector<EventFd> fds;
  for (uint32_t i = 0; i < n; ++i) {
    absl::StatusOr<EventFd> fd = EventFd::Create();
    if (!fd.ok()) return state.SkipWithError("eventfd");
    fds.push_back(*std::move(fd));
  }
  irq::MsiRoutes routes(*guest->vm, 24, n, kvm::DefaultIrqchipRoutes());
  for (auto _ : state) {
    state.PauseTiming();
    for (uint32_t i = 0; i < n; ++i) {
      if (!routes.Enable({1, i}, {0xfee00000, 0x40 + i % 64}, 0, fds[i]).ok()) {
        return state.SkipWithError("enable");
      }
    }
    state.ResumeTiming();
    if (kTogether) {
      benchmark::DoNotOptimize(routes.DisableDevice(1));
    } else {
      for (uint32_t i = 0; i < n; ++i) benchmark::DoNotOptimize(routes.Disable({1, i}));
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK_TEMPLATE(BM_MsiTeardown, false)
    ->Arg(1)
    ->Arg(8)
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_MsiTeardown, true)
    ->Arg(1)
    ->Arg(8)
    ->Arg(32)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// The console report, then one line per pair: the baseline's time / ours (std::map / IovaTree,
// MSI vectors one by one / together).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& r : runs) times_[r.benchmark_name()] = r.GetAdjustedRealTime();
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    GetOutputStream() << "\n";
    struct Pair {
      std::string ours, baseline, label;
    };
    const Pair pairs[] = {{"<IovaTreeAdapter>", "<StdMapTree>", "std::map / IovaTree"},
                          {"<true>", "<false>", "one by one / together"}};
    for (const auto& [name, t] : times_) {
      for (const Pair& p : pairs) {
        const size_t at = name.find(p.ours);
        if (at == std::string::npos) continue;
        std::string baseline = name;
        baseline.replace(at, p.ours.size(), p.baseline);
        auto b = times_.find(baseline);
        if (b == times_.end()) continue;
        char line[160];
        std::snprintf(line, sizeof(line), "ratio %-40s %s = %.2f\n", name.c_str(), p.label.c_str(),
                      b->second / t);
        GetOutputStream() << line;
      }
    }
  }

 private:
  std::map<std::string, double> times_;
};

}  // namespace
}  // namespace vmmkit::iommu

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  vmmkit::iommu::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
