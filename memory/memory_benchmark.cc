// Benchmarks for the guest-memory hot paths: typed access and address translation.
//   bazel run -c opt //memory:memory_benchmark
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "benchmark/benchmark.h"
#include "memory/guest_memory.h"

namespace vmmkit {
namespace {

// `regions` RAM regions of 64 KiB each, with a 64 KiB hole after each one.
GuestMemory MakeMemory(int regions) {
  std::vector<std::pair<GuestAddress, uint64_t>> layout;
  for (int i = 0; i < regions; ++i) {
    layout.push_back({GuestAddress(static_cast<uint64_t>(i) * 0x20000), 0x10000});
  }
  auto mem = GuestMemory::CreateRam(layout, {.backing = GuestRegionBacking::kAnonymous});
  if (!mem.ok()) std::abort();  // A benchmark with no memory has nothing to measure.
  return std::move(mem).value();
}

void BM_ReadObjU64(benchmark::State& state) {
  GuestMemory mem = MakeMemory(static_cast<int>(state.range(0)));
  const uint64_t last_region = static_cast<uint64_t>(state.range(0) - 1) * 0x20000;
  uint64_t addr = 0;
  for (auto _ : state) {
    auto v = mem.ReadObj<uint64_t>(GuestAddress(last_region + (addr & 0xfff8)));
    benchmark::DoNotOptimize(v);
    addr += 8;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_ReadObjU64)->Arg(1)->Arg(8)->Arg(64);

void BM_WriteObjU64(benchmark::State& state) {
  GuestMemory mem = MakeMemory(static_cast<int>(state.range(0)));
  uint64_t addr = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(mem.WriteObj<uint64_t>(GuestAddress(addr & 0xfff8), addr));
    addr += 8;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_WriteObjU64)->Arg(1)->Arg(8)->Arg(64);

// The same 8-byte load done with a raw pointer: the floor ReadObj is measured against.
void BM_RawLoadU64Baseline(benchmark::State& state) {
  GuestMemory mem = MakeMemory(1);
  uint8_t* host = mem.regions()[0]->host_address();
  uint64_t addr = 0;
  for (auto _ : state) {
    uint64_t v;
    std::memcpy(&v, host + (addr & 0xfff8), sizeof(v));
    benchmark::DoNotOptimize(v);
    addr += 8;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_RawLoadU64Baseline);

void BM_Translate(benchmark::State& state) {
  const int regions = static_cast<int>(state.range(0));
  GuestMemory mem = MakeMemory(regions);
  uint64_t i = 0;
  for (auto _ : state) {
    const uint64_t region = (i * 7919) % static_cast<uint64_t>(regions);
    auto host = mem.Translate(GuestAddress(region * 0x20000 + (i & 0xff00)), 256);
    benchmark::DoNotOptimize(host);
    ++i;
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}
BENCHMARK(BM_Translate)->Arg(1)->Arg(8)->Arg(64)->Arg(512);

// The error path: a translation that falls in a hole builds a Status with a message.
void BM_TranslateMiss(benchmark::State& state) {
  GuestMemory mem = MakeMemory(8);
  for (auto _ : state) {
    auto host = mem.Translate(GuestAddress(0x18000), 8);
    benchmark::DoNotOptimize(host);
  }
}
BENCHMARK(BM_TranslateMiss);

}  // namespace
}  // namespace vmmkit

BENCHMARK_MAIN();
