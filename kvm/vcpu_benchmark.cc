// PIO exit round trips per second: Vcpu::Run() against a raw ioctl(KVM_RUN) loop, both driving
// the same vCPU of one tiny long-mode guest (mixing them is safe: Run() only brackets the ioctl).
//   bazel run -c opt //kvm:vcpu_benchmark [-- --rounds=R --exits=N]   (defaults: 20, 20000)
//
// The arms are interleaved: each round times a block of N exits through each arm, the
// wrapper first in even rounds and the raw loop first in odd ones (ABBA), and the ratio reported
// is the median of the per-round ratios. Measured as two separate benchmarks, all of one arm
// before the other, the ratio followed whatever else this machine was doing while each arm ran:
// far below parity under load, at parity when quiet. Within one round both arms see the same
// machine, and alternating the order keeps whichever goes second from always paying for (or
// profiting from) the first.
//
// Prints one line per round, then the spread of the per-round ratios and
//   PIO exits/s (median): Vcpu::Run X, raw KVM_RUN Y, ratio Z (goal >= 0.97)
// where X and Y are each arm's median rate over the rounds and Z is the median per-round ratio
// (not X / Y). Exits 1 on any exit other than the guest's OUT; without a usable /dev/kvm, prints
// "skipped: <reason>" and exits 0.
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "kvm/kvm.h"
#include "kvm/testing/tiny_guest.h"
#include "kvm/vcpu.h"
#include "kvm/vcpu_exit.h"

namespace vmmkit::kvm {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint16_t kPort = 0x10;
// out dx, al in a loop: every iteration is exactly one PIO exit, to kPort.
const std::vector<uint8_t> kPioLoop = {
    0x66, 0xba, 0x10, 0x00,  // mov dx, 0x10 (kPort)
    0xee,                    // loop: out dx, al
    0xeb, 0xfd,              // jmp loop
};

// Long enough that the clock reads around a block are noise, short enough that a round is brief
// and many rounds fit before the machine's load changes.
constexpr int kDefaultExitsPerBlock = 20000;
constexpr int kDefaultRounds = 20;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Seconds for `exits` exits through Vcpu::Run(), each checked to be the guest's OUT.
absl::StatusOr<double> WrapperBlock(Vcpu& vcpu, int exits) {
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < exits; ++i) {
    absl::StatusOr<VcpuExit> run_exit = vcpu.Run();
    if (!run_exit.ok()) return run_exit.status();
    const auto* out = std::get_if<exit::IoOut>(&*run_exit);
    if (out == nullptr || out->port != kPort) {
      return absl::InternalError(
          absl::StrCat("Vcpu::Run: expected the guest's OUT, got ", DescribeExit(*run_exit)));
    }
    benchmark::DoNotOptimize(out->value());
  }
  return SecondsSince(start);
}

// The same through ioctl(KVM_RUN) on the vCPU's fd, reading the exit from kvm_run directly.
absl::StatusOr<double> RawBlock(Vcpu& vcpu, int exits) {
  kvm_run* run = vcpu.run_area();
  const int fd = vcpu.fd();
  const Clock::time_point start = Clock::now();
  for (int i = 0; i < exits; ++i) {
    if (::ioctl(fd, KVM_RUN, 0) < 0) return absl::ErrnoToStatus(errno, "raw KVM_RUN");
    if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT ||
        run->io.port != kPort) {
      return absl::InternalError(absl::StrCat(
          "raw KVM_RUN: expected the guest's OUT, got exit reason ", run->exit_reason));
    }
    benchmark::DoNotOptimize(reinterpret_cast<uint8_t*>(run)[run->io.data_offset]);
  }
  return SecondsSince(start);
}

// The middle value, or the mean of the two middle values of an even count. `v` is not empty.
double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t mid = v.size() / 2;
  return v.size() % 2 == 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

int RunBenchmark(int rounds, int exits_per_block) {
  if (std::string why = testing::KvmUnavailableReason(); !why.empty()) {
    std::printf("vcpu_benchmark: skipped: %s\n", why.c_str());
    return 0;
  }
  absl::StatusOr<Kvm> kvm = Kvm::Open();
  if (!kvm.ok()) {
    std::fprintf(stderr, "vcpu_benchmark: %s\n", kvm.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<testing::TinyGuest> guest =
      testing::MakeTinyGuest(*kvm, testing::CpuMode::kLong, kPioLoop);
  if (!guest.ok()) {
    std::fprintf(stderr, "vcpu_benchmark: guest setup: %s\n", guest.status().ToString().c_str());
    return 1;
  }
  Vcpu& vcpu = *guest->vcpu;

  // One untimed block per arm first: the first exits fault in the guest's pages and warm the
  // caches and branch predictors, a cost that would otherwise land on round 0's first arm only.
  for (const absl::StatusOr<double>& warm :
       {WrapperBlock(vcpu, exits_per_block), RawBlock(vcpu, exits_per_block)}) {
    if (!warm.ok()) {
      std::fprintf(stderr, "vcpu_benchmark: warm-up: %s\n", warm.status().ToString().c_str());
      return 1;
    }
  }

  const double exits = static_cast<double>(exits_per_block);
  std::vector<double> wrapper_rates, raw_rates, ratios;
  for (int round = 0; round < rounds; ++round) {
    const bool wrapper_first = round % 2 == 0;
    double wrapper_seconds = 0;
    double raw_seconds = 0;
    for (int turn = 0; turn < 2; ++turn) {
      const bool wrapper = (turn == 0) == wrapper_first;
      absl::StatusOr<double> seconds =
          wrapper ? WrapperBlock(vcpu, exits_per_block) : RawBlock(vcpu, exits_per_block);
      if (!seconds.ok()) {
        std::fprintf(stderr, "vcpu_benchmark: round %d: %s\n", round,
                     seconds.status().ToString().c_str());
        return 1;
      }
      (wrapper ? wrapper_seconds : raw_seconds) = *seconds;
    }
    wrapper_rates.push_back(exits / wrapper_seconds);
    raw_rates.push_back(exits / raw_seconds);
    // Wrapper rate over raw rate: the same number of exits, so raw time over wrapper time.
    ratios.push_back(raw_seconds / wrapper_seconds);
    std::printf("round %2d (%s first): Vcpu::Run %.0f, raw KVM_RUN %.0f exits/s, ratio %.4f\n",
                round, wrapper_first ? "Vcpu::Run" : "raw", wrapper_rates.back(), raw_rates.back(),
                ratios.back());
  }

  const auto [min_ratio, max_ratio] = std::minmax_element(ratios.begin(), ratios.end());
  std::printf("\nper-round ratio: min %.4f, max %.4f (%d rounds of %d exits per arm, ABBA)\n",
              *min_ratio, *max_ratio, rounds, exits_per_block);
  std::printf("PIO exits/s (median): Vcpu::Run %.0f, raw KVM_RUN %.0f, ratio %.4f (goal >= 0.97)\n",
              Median(wrapper_rates), Median(raw_rates), Median(ratios));
  return 0;
}

}  // namespace
}  // namespace vmmkit::kvm

int main(int argc, char** argv) {
  int rounds = vmmkit::kvm::kDefaultRounds;
  int exits = vmmkit::kvm::kDefaultExitsPerBlock;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    bool ok = false;
    for (auto [flag, value] : {std::pair<std::string_view, int*>{"--rounds=", &rounds},
                               std::pair<std::string_view, int*>{"--exits=", &exits}}) {
      if (!arg.starts_with(flag)) continue;
      const std::string_view text = arg.substr(flag.size());
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *value);
      ok = ec == std::errc() && end == text.data() + text.size() && *value > 0;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: vcpu_benchmark [--rounds=R] [--exits=N]  (R, N > 0; default %d, %d)\n",
                   vmmkit::kvm::kDefaultRounds, vmmkit::kvm::kDefaultExitsPerBlock);
      return 2;
    }
  }
  return vmmkit::kvm::RunBenchmark(rounds, exits);
}
