// What one control call costs with no VM work: latency and context switches per call (all of the
// process's threads, client and server: they are one process here), over a Unix socket from a
// connected client on a long-lived channel.
// Each back to back (pause_us:0) and after a 2 ms pause (pause_us:2000, not timed), as a
// controller's calls come: then the server's threads have gone to sleep and must be woken.
//   BM_VmmGetVm / BM_VmmHealthCheck: vmm's ApiServer (fake VM behind the controller; GetVm goes
//     through the controller's event loop, as every VmService call does).
//   BM_BareSyncCall/default_health:0|1: a bare synchronous gRPC server with only an empty
//     VmService (the call returns UNIMPLEMENTED: a full round trip, no handler), without and with
//     gRPC's default health service, the peer pair behind ApiServer's own health service.
//   BM_BareCallbackCall: the same empty service on gRPC's callback API, the server model
//     ApiServer does not use: in 1.51 its own threads take more context switches per call than
//     the synchronous server's and are no faster (on this machine, medians of 5 after a 2 ms
//     pause, two runs: 12.4-12.9 switches and 301-391 us against 9.1-9.2 and 289-307 us).
//   bazel run -c opt //vmm:api_server_benchmark
#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "benchmark/benchmark.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/vmm/v1/vmm.grpc.pb.h"
#include "vmm/api_server.h"
#include "vmm/testing/fake_vm.h"

namespace vmmkit::vmm {
namespace {

namespace pb = ::vmmkit::vmm::v1;

// Voluntary and involuntary context switches of every thread of this process so far (threads
// that have exited are not counted: the servers' threads live through a benchmark).
int64_t ContextSwitches() {
  int64_t total = 0;
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream status(std::string("/proc/self/task/") + e->d_name + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.find("ctxt_switches:") != std::string::npos) {
        total += std::stoll(line.substr(line.find(':') + 1));
      }
    }
  }
  ::closedir(dir);
  return total;
}

template <typename Call>
void Measure(benchmark::State& state, int64_t pause_us, const Call& call) {
  for (int i = 0; i < 20; ++i) call();  // The channel's first calls cost more.
  const int64_t before = ContextSwitches();
  for (auto _ : state) {
    if (pause_us > 0) {
      state.PauseTiming();
      ::usleep(static_cast<useconds_t>(pause_us));
      state.ResumeTiming();
    }
    if (!call()) state.SkipWithError("the call failed");
  }
  state.counters["switches/call"] = benchmark::Counter(
      static_cast<double>(ContextSwitches() - before), benchmark::Counter::kAvgIterations);
}

struct VmmServer {
  VmmServer() {
    (void)loop.RunOnLoop([&] { controller.OnStarted(); });
    path = testing::ShortTempPath("bench.sock");
    ::unlink(path.c_str());
    absl::StatusOr<std::unique_ptr<ApiServer>> started = ApiServer::StartUnix(controller, path);
    if (!started.ok()) std::abort();
    server = *std::move(started);
    channel = grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials());
  }
  testing::FakeVm fake;
  testing::ThreadLoop loop;
  VmController controller{fake, loop};
  std::string path;
  std::unique_ptr<ApiServer> server;
  std::shared_ptr<grpc::Channel> channel;
};

void BM_VmmGetVm(benchmark::State& state) {
  VmmServer s;
  auto stub = pb::VmService::NewStub(s.channel);
  Measure(state, state.range(0), [&] {
    grpc::ClientContext ctx;
    pb::Vm out;
    return stub->GetVm(&ctx, pb::GetVmRequest(), &out).ok();
  });
}
BENCHMARK(BM_VmmGetVm)->ArgName("pause_us")->Arg(0)->Arg(2000)->UseRealTime();

void BM_VmmHealthCheck(benchmark::State& state) {
  VmmServer s;
  auto stub = grpc::health::v1::Health::NewStub(s.channel);
  Measure(state, state.range(0), [&] {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckResponse out;
    return stub->Check(&ctx, grpc::health::v1::HealthCheckRequest(), &out).ok();
  });
}
BENCHMARK(BM_VmmHealthCheck)->ArgName("pause_us")->Arg(0)->Arg(2000)->UseRealTime();

// Serves `empty` (a VmService with no method implemented) alone, with gRPC's default health
// service or not, and measures GetVm calls to it: each a full round trip that answers
// UNIMPLEMENTED.
void MeasureBareServer(benchmark::State& state, grpc::Service& empty, bool default_health) {
  grpc::EnableDefaultHealthCheckService(default_health);
  const std::string path = testing::ShortTempPath("bare.sock");
  ::unlink(path.c_str());
  grpc::ServerBuilder builder;
  builder.AddListeningPort("unix:" + path, grpc::InsecureServerCredentials());
  builder.RegisterService(&empty);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  grpc::EnableDefaultHealthCheckService(false);
  if (server == nullptr) std::abort();
  auto stub = pb::VmService::NewStub(
      grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials()));
  Measure(state, state.range(0), [&] {
    grpc::ClientContext ctx;
    pb::Vm out;
    return stub->GetVm(&ctx, pb::GetVmRequest(), &out).error_code() ==
           grpc::StatusCode::UNIMPLEMENTED;
  });
  server->Shutdown();
}

void BM_BareSyncCall(benchmark::State& state) {
  pb::VmService::Service empty;
  MeasureBareServer(state, empty, state.range(1) != 0);
}
BENCHMARK(BM_BareSyncCall)
    ->ArgNames({"pause_us", "default_health"})
    ->ArgsProduct({{0, 2000}, {0, 1}})
    ->UseRealTime();

void BM_BareCallbackCall(benchmark::State& state) {
  pb::VmService::CallbackService empty;
  MeasureBareServer(state, empty, /*default_health=*/false);
}
BENCHMARK(BM_BareCallbackCall)->ArgName("pause_us")->Arg(0)->Arg(2000)->UseRealTime();

}  // namespace
}  // namespace vmmkit::vmm

BENCHMARK_MAIN();
