// An API soak: 32 clients, each on its own connection, for VMMKIT_SOAK_SECONDS (default 60)
// against the real gRPC server and controller over a fake VM, mixing every RPC (GetVm,
// ListDevices, GetDevice, Pause, Resume, AddDevice, RemoveDevice, WatchEvents; Shutdown only
// malformed, so the VM lives). Checked: every call is answered with a status the API specifies;
// after the clients leave, the process's fds and threads are back where they were once the
// server had warmed up, and no event stream stays open. Prints the figures. Manual (a minute):
//   bazel test //vmm:api_soak_test --test_output=streamed
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/process_counts.h"
#include "gtest/gtest.h"
#include "proto/vmm/v1/vmm.grpc.pb.h"
#include "vmm/api_server.h"
#include "vmm/testing/fake_vm.h"

namespace vmmkit::vmm {
namespace {

namespace pb = ::vmmkit::vmm::v1;

bool Specified(grpc::StatusCode c) {
  // CANCELLED: a watch the client ended.
  return c == grpc::StatusCode::CANCELLED || IsSpecifiedStatus(static_cast<absl::StatusCode>(c));
}

TEST(ApiSoakTest, ThirtyTwoClientsMixingEveryRpc) {
  const char* env = std::getenv("VMMKIT_SOAK_SECONDS");
  const int seconds = env != nullptr ? std::atoi(env) : 60;
  testing::FakeVm vm;
  testing::ThreadLoop loop;
  VmController controller(vm, loop);
  ASSERT_TRUE(loop.RunOnLoop([&] { controller.OnStarted(); }).ok());
  const std::string path = testing::ShortTempPath("soak.sock");
  ::unlink(path.c_str());
  auto server = ApiServer::StartUnix(controller, path);
  ASSERT_TRUE(server.ok()) << server.status();

  std::mutex mu;
  std::map<std::string, uint64_t> calls;  // "RPC code" -> count.
  std::vector<std::string> unspecified;
  std::atomic<bool> stop{false};
  std::atomic<int> warmed{0};
  int fds_warm = 0, threads_warm = 0;
  auto client = [&](int id) {
    auto channel = grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials());
    auto stub = pb::VmService::NewStub(channel);
    std::mt19937 rng(static_cast<uint32_t>(id));
    const std::string own = absl::StrCat("hp", id);
    const std::string host = absl::StrCat("0000:00:", id < 10 ? "0" : "", id % 32, ".0");
    bool counted_warm = false;
    while (!stop.load()) {
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
      grpc::Status s;
      const char* rpc = "";
      switch (rng() % 10) {
        case 0: {
          pb::Vm out;
          rpc = "GetVm";
          s = stub->GetVm(&c, {}, &out);
          break;
        }
        case 1: {
          pb::ListDevicesResponse out;
          rpc = "ListDevices";
          s = stub->ListDevices(&c, {}, &out);
          break;
        }
        case 2: {
          pb::GetDeviceRequest r;
          r.set_id(rng() % 2 ? "com1" : own);
          pb::Device out;
          rpc = "GetDevice";
          s = stub->GetDevice(&c, r, &out);
          break;
        }
        case 3: {
          pb::Vm out;
          rpc = "Pause";
          s = stub->Pause(&c, {}, &out);
          break;
        }
        case 4: {
          pb::Vm out;
          rpc = "Resume";
          s = stub->Resume(&c, {}, &out);
          break;
        }
        case 5: {
          pb::AddDeviceRequest r;
          r.set_id(own);
          r.set_host(host);
          pb::Device out;
          rpc = "AddDevice";
          s = stub->AddDevice(&c, r, &out);
          break;
        }
        case 6: {
          pb::RemoveDeviceRequest r;
          r.set_id(own);
          r.mutable_timeout()->set_nanos(20000000);  // The fake guest never lets go: 20 ms.
          pb::RemoveDeviceResponse out;
          rpc = "RemoveDevice";
          s = stub->RemoveDevice(&c, r, &out);
          break;
        }
        case 7: {
          pb::ShutdownRequest r;  // No mode: refused, the VM lives on.
          pb::ShutdownResponse out;
          rpc = "Shutdown";
          s = stub->Shutdown(&c, r, &out);
          break;
        }
        default: {
          rpc = "WatchEvents";
          auto reader = stub->WatchEvents(&c, {});
          pb::Event e;
          (void)reader->Read(&e);
          c.TryCancel();
          while (reader->Read(&e)) {
          }
          s = reader->Finish();
          break;
        }
      }
      std::lock_guard<std::mutex> l(mu);
      ++calls[absl::StrCat(rpc, " ", s.error_code())];
      if (!Specified(s.error_code()) && unspecified.size() < 10) {
        unspecified.push_back(absl::StrCat(rpc, ": ", s.error_code(), " ", s.error_message()));
      }
      if (!counted_warm) {
        counted_warm = true;
        warmed.fetch_add(1);
      }
    }
  };
  std::vector<std::thread> clients;
  for (int i = 0; i < 32; ++i) clients.emplace_back(client, i);
  while (warmed.load() < 32) absl::SleepFor(absl::Milliseconds(10));
  absl::SleepFor(absl::Seconds(2));
  fds_warm = static_cast<int>(OpenFdCount());
  threads_warm = static_cast<int>(ThreadCount());
  absl::SleepFor(absl::Seconds(seconds));
  stop.store(true);
  for (auto& t : clients) t.join();
  absl::SleepFor(absl::Seconds(2));  // gRPC's threads wind down.
  const int fds_after = static_cast<int>(OpenFdCount());
  const int threads_after = static_cast<int>(ThreadCount());
  uint64_t total = 0;
  for (const auto& [k, n] : calls) total += n;
  std::printf(
      "soak: BENCH %d s, 32 clients: %lu calls (%.0f/s); fds warm %d after %d; threads warm "
      "%d after %d\n",
      seconds, static_cast<unsigned long>(total), static_cast<double>(total) / seconds, fds_warm,
      fds_after, threads_warm, threads_after);
  for (const auto& [k, n] : calls)
    std::printf("soak:   %s: %lu\n", k.c_str(), static_cast<unsigned long>(n));
  EXPECT_TRUE(unspecified.empty()) << unspecified.front();
  // 32 clients fit under the server's caps: nothing but event streams (at most 16 open) is refused
  // for lack of room.
  for (const auto& [k, n] : calls) {
    EXPECT_TRUE(k.rfind("WatchEvents", 0) == 0 ||
                k.find(absl::StrCat(" ", grpc::StatusCode::RESOURCE_EXHAUSTED)) ==
                    std::string::npos)
        << k << ": " << n;
  }
  EXPECT_GT(total, 0u);
  // The clients' connections are gone: what is left is the server's own (and fewer threads).
  EXPECT_LE(fds_after, fds_warm) << "fds grew";
  EXPECT_LE(threads_after, threads_warm) << "threads grew";
  server->reset();
}

}  // namespace
}  // namespace vmmkit::vmm
