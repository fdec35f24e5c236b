// Lab benchmark: what masking and unmasking one MSI vector of a passed-through device costs, the
// two ways a VMM can do it, on L1's real VFIO (edu bound to vfio-pci, interrupt remapping on) and
// KVM:
//   BM_MaskUnmask/irqfd:        unbind the vector's irqfd on mask, bind it again on unmask; VFIO's
//                               eventfd counts meanwhile (irq/'s MsiRoutes::Mask and Unmask:
//                               what passthrough/ does);
//   BM_MaskUnmask/vfio_trigger: keep the irqfd, point VFIO at a second eventfd on mask and back on
//                               unmask, and read what was held (QEMU's way): one
//                               VFIO_DEVICE_SET_IRQS for one vector each way.
// One iteration is a mask and an unmask; a guest's vCPU waits in each (the MSI-X table write or
// the MSI mask-bits write traps to the VMM). Prints Google Benchmark's table and the ratio
// irqfd / vfio_trigger (below 1: the irqfd way is faster).
// Usage: EDU_BDF=0000:01:00.0 msi_mask_bench [--benchmark_...]
#include <linux/vfio.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/event_fd.h"
#include "base/status_macros.h"
#include "benchmark/benchmark.h"
#include "irq/msi_routes.h"
#include "kvm/kvm.h"
#include "kvm/testing/tiny_guest.h"
#include "kvm/vm.h"
#include "tests/lab/vfio/own_container.h"

namespace vmmkit {
namespace {

// edu's one MSI vector, enabled in VFIO and routed by KVM with an irqfd.
struct Setup {
  vfio::OwnContainerDevice edu;
  std::unique_ptr<kvm::Kvm> kvm;
  std::unique_ptr<kvm::testing::TinyGuest> guest;
  std::unique_ptr<irq::MsiRoutes> routes;
  std::unique_ptr<EventFd> to_kvm, held;
};

absl::StatusOr<std::unique_ptr<Setup>> Open(const std::string& bdf) {
  auto s = std::make_unique<Setup>();
  ASSIGN_OR_RETURN(s->edu, vfio::OpenInOwnContainer(bdf));
  ASSIGN_OR_RETURN(kvm::Kvm kvm, kvm::Kvm::Open());
  s->kvm = std::make_unique<kvm::Kvm>(std::move(kvm));
  ASSIGN_OR_RETURN(kvm::testing::TinyGuest guest,
                   kvm::testing::MakeTinyGuest(*s->kvm, kvm::testing::CpuMode::kLong, {0xf4},
                                               {.irqchip = true}));
  s->guest = std::make_unique<kvm::testing::TinyGuest>(std::move(guest));
  ASSIGN_OR_RETURN(EventFd to_kvm, EventFd::Create());
  ASSIGN_OR_RETURN(EventFd held, EventFd::Create());
  s->to_kvm = std::make_unique<EventFd>(std::move(to_kvm));
  s->held = std::make_unique<EventFd>(std::move(held));
  s->routes = std::make_unique<irq::MsiRoutes>(*s->guest->vm, 24, 8, kvm::DefaultIrqchipRoutes());
  RETURN_IF_ERROR(s->routes->Enable({1, 0}, {0xfee00000, 0x41}, 0, *s->to_kvm).status());
  const int fd = s->to_kvm->fd();
  RETURN_IF_ERROR(
      s->edu.device->EnableIrqs(VFIO_PCI_MSI_IRQ_INDEX, 0, absl::MakeConstSpan(&fd, 1)));
  return s;
}

Setup* TheSetup() {
  static Setup* setup = [] {
    const char* bdf = std::getenv("EDU_BDF");
    if (bdf == nullptr) return static_cast<Setup*>(nullptr);
    absl::StatusOr<std::unique_ptr<Setup>> s = Open(bdf);
    if (!s.ok()) {
      std::fprintf(stderr, "msi_mask_bench: %s\n", s.status().ToString().c_str());
      return static_cast<Setup*>(nullptr);
    }
    return s->release();
  }();
  return setup;
}

void BM_MaskUnmaskIrqfd(benchmark::State& state) {
  Setup* s = TheSetup();
  if (s == nullptr) return state.SkipWithError("no edu in VFIO (set EDU_BDF) or no KVM");
  for (auto _ : state) {
    if (!s->routes->Mask({1, 0}).ok() || !s->routes->Unmask({1, 0}).ok()) {
      return state.SkipWithError("MsiRoutes Mask/Unmask failed");
    }
  }
}
BENCHMARK(BM_MaskUnmaskIrqfd)->Name("BM_MaskUnmask/irqfd")->Unit(benchmark::kMicrosecond);

void BM_MaskUnmaskVfioTrigger(benchmark::State& state) {
  Setup* s = TheSetup();
  if (s == nullptr) return state.SkipWithError("no edu in VFIO (set EDU_BDF) or no KVM");
  const int held = s->held->fd(), to_kvm = s->to_kvm->fd();
  for (auto _ : state) {
    if (!s->edu.device->EnableIrqs(VFIO_PCI_MSI_IRQ_INDEX, 0, absl::MakeConstSpan(&held, 1)).ok() ||
        !s->edu.device->EnableIrqs(VFIO_PCI_MSI_IRQ_INDEX, 0, absl::MakeConstSpan(&to_kvm, 1))
             .ok()) {
      return state.SkipWithError("VFIO_DEVICE_SET_IRQS failed");
    }
    benchmark::DoNotOptimize(s->held->Read());
  }
}
BENCHMARK(BM_MaskUnmaskVfioTrigger)
    ->Name("BM_MaskUnmask/vfio_trigger")
    ->Unit(benchmark::kMicrosecond);

// Prints the ratio of the two (irqfd / vfio_trigger) after the table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(OO_None) {}  // No colours: the lab greps these lines.
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.error_occurred || r.run_type != Run::RT_Iteration) continue;
      times_[r.benchmark_name()] = r.GetAdjustedRealTime();
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    const auto a = times_.find("BM_MaskUnmask/irqfd");
    const auto b = times_.find("BM_MaskUnmask/vfio_trigger");
    if (a != times_.end() && b != times_.end() && b->second > 0) {
      std::printf("ratio BM_MaskUnmask irqfd/vfio_trigger: %.2fx\n", a->second / b->second);
    }
  }

 private:
  std::map<std::string, double> times_;
};

}  // namespace
}  // namespace vmmkit

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  vmmkit::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
