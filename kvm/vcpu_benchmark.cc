// PIO exit round trips per second: Vcpu::Run() against a raw ioctl(KVM_RUN) loop on the same kind
// of guest, in the same binary. Prints both rates (median over repetitions) and the ratio.
//   bazel run -c opt //kvm:vcpu_benchmark
//   (defaults to --benchmark_repetitions=5; pass your own flags to override)
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "kvm/kvm.h"
#include "kvm/testing/tiny_guest.h"
#include "kvm/vcpu.h"

namespace vmmkit::kvm {
namespace {

// out dx, al in a loop: every iteration is exactly one PIO exit.
const std::vector<uint8_t> kPioLoop = {
    0x66, 0xba, 0x10, 0x00,  // mov dx, 0x10
    0xee,                    // loop: out dx, al
    0xeb, 0xfd,              // jmp loop
};

testing::TinyGuest MakeGuest(benchmark::State& state) {
  auto kvm = Kvm::Open();
  if (!kvm.ok()) {
    state.SkipWithError(std::string(kvm.status().message()).c_str());
    std::exit(1);
  }
  auto g = testing::MakeTinyGuest(*kvm, testing::CpuMode::kLong, kPioLoop);
  if (!g.ok()) {
    std::fprintf(stderr, "guest setup: %s\n", g.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(g).value();
}

void BM_PioExit_VcpuRun(benchmark::State& state) {
  testing::TinyGuest g = MakeGuest(state);
  for (auto _ : state) {
    absl::StatusOr<VcpuExit> exit = g.vcpu->Run();
    if (!exit.ok() || !std::holds_alternative<exit::IoOut>(*exit)) {
      state.SkipWithError("unexpected exit");
      break;
    }
    benchmark::DoNotOptimize(std::get<exit::IoOut>(*exit).value());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_PioExit_VcpuRun)->UseRealTime();

void BM_PioExit_RawIoctl(benchmark::State& state) {
  testing::TinyGuest g = MakeGuest(state);
  kvm_run* run = g.vcpu->run_area();
  const int fd = g.vcpu->fd();
  for (auto _ : state) {
    if (::ioctl(fd, KVM_RUN, 0) < 0 || run->exit_reason != KVM_EXIT_IO) {
      state.SkipWithError("unexpected exit");
      break;
    }
    benchmark::DoNotOptimize(reinterpret_cast<uint8_t*>(run)[run->io.data_offset]);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_PioExit_RawIoctl)->UseRealTime();

// Prints the usual table and remembers each run's rate, to print medians and the ratio after.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs) {
      if (r.run_type != Run::RT_Iteration || r.error_occurred) continue;
      auto it = r.counters.find("items_per_second");
      if (it != r.counters.end()) rates_[r.run_name.function_name].push_back(it->second.value);
    }
  }
  double Median(const std::string& name) {
    std::vector<double>& v = rates_[name];
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }

 private:
  std::map<std::string, std::vector<double>> rates_;
};

}  // namespace
}  // namespace vmmkit::kvm

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=5";
  bool has_reps = false;
  for (int i = 1; i < argc; ++i)
    has_reps |= std::string(argv[i]).starts_with("--benchmark_repetitions");
  if (!has_reps) args.push_back(reps.data());
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  vmmkit::kvm::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  const double wrapper = reporter.Median("BM_PioExit_VcpuRun");
  const double raw = reporter.Median("BM_PioExit_RawIoctl");
  std::printf(
      "\nPIO exits/s (median): Vcpu::Run %.0f, raw KVM_RUN %.0f, ratio %.4f (goal >= 0.97)\n",
      wrapper, raw, raw > 0 ? wrapper / raw : 0.0);
  benchmark::Shutdown();
  return 0;
}
