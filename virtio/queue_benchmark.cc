// What checking costs on a virtqueue's hot path. One chain's round trip through the device side
// of a split virtqueue: the driver publishes a 3-descriptor chain (a virtio-blk request's shape:
// header, data, status), the device pops it, returns it and asks whether to interrupt (EVENT_IDX).
// SplitQueue (every index, link and length checked, every ring access through IdentityDmaSpace's
// bounds-checked copies) against a peer that trusts the ring: raw host pointers into the same
// memory, no checks, the same fences. The two take turns for 7 rounds; prints each round, the
// medians and the ratio.
//   bazel run -c opt //virtio:queue_benchmark
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "benchmark/benchmark.h"
#include "memory/dma_space.h"
#include "memory/guest_memory.h"
#include "virtio/queue.h"
#include "virtio/testing/driver_queue.h"

namespace vmmkit::virtio {
namespace {

constexpr uint16_t kSize = 256;
constexpr uint16_t kChainLength = 3;
constexpr uint16_t kChains = kSize / kChainLength;
constexpr uint64_t kChainsPerRound = 2'000'000;

struct Rings {
  VirtqDesc* desc;
  uint16_t* avail;  // flags, idx, ring[kSize], used_event.
  uint16_t* used;   // flags, idx, then {id, len} pairs, avail_event.
};

// A trusting device: what the ring says, it does.
class RawQueue {
 public:
  explicit RawQueue(Rings r) : r_(r) {}
  bool Pop(uint16_t& head, uint64_t& bytes) {
    const uint16_t idx = std::atomic_ref<uint16_t>(r_.avail[1]).load(std::memory_order_acquire);
    if (idx == next_avail_) return false;
    head = r_.avail[2 + next_avail_ % kSize];
    ++next_avail_;
    bytes = 0;
    for (uint16_t i = head;; i = r_.desc[i].next) {
      bytes += r_.desc[i].len;
      if (!(r_.desc[i].flags & kDescNext)) break;
    }
    return true;
  }
  void AddUsed(uint16_t head, uint32_t len) {
    uint32_t* elem = reinterpret_cast<uint32_t*>(r_.used + 2) + 2 * (next_used_ % kSize);
    elem[0] = head;
    elem[1] = len;
    ++next_used_;
    ++added_;
    std::atomic_ref<uint16_t>(r_.used[1]).store(next_used_, std::memory_order_release);
  }
  bool NeedsInterrupt() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    const uint16_t event = r_.avail[2 + kSize];
    const uint16_t old = static_cast<uint16_t>(next_used_ - added_);
    added_ = 0;
    return static_cast<uint16_t>(next_used_ - event - 1) < static_cast<uint16_t>(next_used_ - old);
  }

 private:
  Rings r_;
  uint16_t next_avail_ = 0, next_used_ = 0, added_ = 0;
};

// The driver's side, identical for both: the chains are written once; each round trip publishes
// one (two stores) and the device's work follows.
void Publish(const Rings& r, uint16_t& avail_idx, uint16_t head) {
  r.avail[2 + avail_idx % kSize] = head;
  ++avail_idx;
  std::atomic_ref<uint16_t>(r.avail[1]).store(avail_idx, std::memory_order_release);
}

double ChainsPerSecond(const auto& body) {
  const auto t0 = std::chrono::steady_clock::now();
  body();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return static_cast<double>(kChainsPerRound) / s;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main() {
  absl::StatusOr<GuestMemory> memory = GuestMemory::CreateRam(
      {{GuestAddress(0), 1 << 20}}, {.backing = GuestRegionBacking::kAnonymous});
  if (!memory.ok()) std::abort();
  testing::DriverQueue driver(*memory, GuestAddress(0x1000), kSize);
  for (uint16_t c = 0; c < kChains; ++c) {
    driver.Add({{GuestAddress(0x10000 + 0x1000 * c), 16, false},
                {GuestAddress(0x20000 + 0x1000 * c), 4096, true},
                {GuestAddress(0x30000 + 0x1000 * c), 1, true}});
  }
  auto host = [&](GuestAddress a) {
    absl::StatusOr<uint8_t*> p = memory->Translate(a, 16);
    if (!p.ok()) std::abort();
    return *p;
  };
  const Rings rings{reinterpret_cast<VirtqDesc*>(host(driver.desc())),
                    reinterpret_cast<uint16_t*>(host(driver.avail())),
                    reinterpret_cast<uint16_t*>(host(driver.used()))};
  IdentityDmaSpace dma(*memory);
  std::vector<double> checked, raw;
  std::printf("virtio queue round trips (pop, add used, interrupt check), %llu chains a round\n",
              static_cast<unsigned long long>(kChainsPerRound));
  for (int round = 0; round < 7; ++round) {
    // Both start from the same state: a fresh ring (indexes at 0), used_event 0.
    driver.SetAvailIdx(0);
    driver.SetUsedEvent(0);
    absl::StatusOr<SplitQueue> q = SplitQueue::Create(driver.config(/*event_idx=*/true));
    if (!q.ok()) std::abort();
    uint16_t avail_idx = 0;
    checked.push_back(ChainsPerSecond([&] {
      for (uint64_t i = 0; i < kChainsPerRound; ++i) {
        Publish(rings, avail_idx, static_cast<uint16_t>((i % kChains) * kChainLength));
        absl::StatusOr<std::optional<DescriptorChain>> chain = q->Pop(dma);
        if (!chain.ok() || !chain->has_value()) std::abort();
        if (!q->AddUsed(dma, (*chain)->head, 1).ok()) std::abort();
        benchmark::DoNotOptimize(q->NeedsInterrupt(dma));
      }
    }));
    driver.SetAvailIdx(0);
    RawQueue rq(rings);
    avail_idx = 0;
    raw.push_back(ChainsPerSecond([&] {
      for (uint64_t i = 0; i < kChainsPerRound; ++i) {
        Publish(rings, avail_idx, static_cast<uint16_t>((i % kChains) * kChainLength));
        uint16_t head;
        uint64_t bytes;
        if (!rq.Pop(head, bytes)) std::abort();
        benchmark::DoNotOptimize(bytes);
        rq.AddUsed(head, 1);
        benchmark::DoNotOptimize(rq.NeedsInterrupt());
      }
    }));
    std::printf("round %d: SplitQueue %.0f/s, trusting peer %.0f/s\n", round + 1, checked.back(),
                raw.back());
  }
  const double c = Median(checked), r = Median(raw);
  std::printf(
      "median: SplitQueue %.0f chains/s (%.0f ns each), trusting peer %.0f/s (%.0f ns), "
      "ratio %.3f\n",
      c, 1e9 / c, r, 1e9 / r, c / r);
  return 0;
}

}  // namespace
}  // namespace vmmkit::virtio

int main() { return vmmkit::virtio::Main(); }
