// vmmctl in process against a real ApiServer (fake VM behind it): output, --json, exit codes.
#include "vmm/vmmctl.h"

#include <sys/wait.h>
#include <unistd.h>

#include <sstream>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/api_server.h"
#include "vmm/testing/fake_vm.h"

namespace vmmkit::vmm {
namespace {

using testing::FakeVm;
using ::testing::HasSubstr;
using testing::ThreadLoop;

class VmmctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    socket_ = testing::ShortTempPath("ctl.sock");
    ::unlink(socket_.c_str());
    ASSERT_TRUE(loop_.RunOnLoop([&] { controller_.OnStarted(); }).ok());
    auto server = ApiServer::StartUnix(controller_, socket_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
  }
  // Runs vmmctl; returns the exit status and leaves its output in out_/err_.
  int Run(std::vector<std::string> args) {
    out_.str("");
    err_.str("");
    args.insert(args.begin(), "--socket=" + socket_);
    return RunVmmctl(args, out_, err_);
  }
  FakeVm vm_;
  ThreadLoop loop_;
  VmController controller_{vm_, loop_};
  std::string socket_;
  std::unique_ptr<ApiServer> server_;
  std::ostringstream out_, err_;
};

TEST_F(VmmctlTest, GetPrintsTheVmForPeopleAndForProgrammes) {
  ASSERT_EQ(Run({"get"}), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("state     RUNNING"));
  EXPECT_THAT(out_.str(), HasSubstr("vcpus     2 (host threads 100 101)"));
  EXPECT_THAT(out_.str(), HasSubstr("com1\tplatform\t16550A UART at 0x3f8"));
  ASSERT_EQ(Run({"--json", "get"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("\"state\": \"VM_STATE_RUNNING\""));
  ASSERT_EQ(Run({"devices"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("com1"));
  ASSERT_EQ(Run({"health"}), kExitOk);
  EXPECT_EQ(out_.str(), "SERVING\n");
}

TEST_F(VmmctlTest, ExitCodesSayWhatHappened) {
  EXPECT_EQ(Run({"pause"}), kExitOk);
  EXPECT_EQ(out_.str(), "state PAUSED\n");
  EXPECT_EQ(Run({"pause"}), kExitRefused);
  EXPECT_THAT(err_.str(), HasSubstr("vmmctl: pause: FAILED_PRECONDITION: Pause: the VM is PAUSED"));
  EXPECT_EQ(Run({"resume"}), kExitOk);
  EXPECT_EQ(Run({"shutdown", "--grace=20m"}), kExitBadRequest);
  EXPECT_THAT(err_.str(), HasSubstr("INVALID_ARGUMENT"));
  EXPECT_EQ(Run({"shutdown", "--force"}), kExitOk);
  EXPECT_EQ(out_.str(), "state STOPPING\n");
  EXPECT_EQ(Run({"shutdown", "--force"}), kExitRefused);
  // Read on the loop thread, which wrote it (gRPC's own synchronization is invisible to TSan).
  std::string stopped;
  ASSERT_TRUE(loop_.RunOnLoop([&] { stopped = vm_.stopped; }).ok());
  EXPECT_EQ(stopped, "Shutdown request (forced)");
}

TEST_F(VmmctlTest, DeviceShowsOneDeviceOrSaysThereIsNone) {
  ASSERT_EQ(Run({"device", "com1"}), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("com1\tplatform"));
  EXPECT_EQ(Run({"device", "nosuch"}), kExitBadRequest);
  EXPECT_THAT(err_.str(), HasSubstr("NOT_FOUND"));
  EXPECT_THAT(err_.str(), HasSubstr("no device 'nosuch'"));
  EXPECT_EQ(Run({"device"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("device wants an ID"));
  EXPECT_EQ(Run({"device", "a", "b"}), kExitUsage);
}

TEST_F(VmmctlTest, ADeviceBehindTheGuestIommuShowsItsDomainAndCounts) {
  const DeviceSummary d{"hp0",
                        DeviceSummary::Kind::kVfioPci,
                        "0000:00:03.0",
                        "0000:01:00.0",
                        "vfio-pci",
                        DeviceIommuSummary{.domain = 7,
                                           .translation_enabled = true,
                                           .shadowed_mappings = 3,
                                           .page_invalidations = 40,
                                           .host_map_calls = 23,
                                           .host_unmap_calls = 20},
                        std::nullopt,
                        std::nullopt,
                        std::nullopt};
  ASSERT_TRUE(loop_.RunOnLoop([&] { vm_.hotplugged["hp0"] = d; }).ok());  // The VM's thread.
  ASSERT_EQ(Run({"device", "hp0"}), kExitOk) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("iommu\tdomain 7, 3 shadowed mappings; invalidations: page 40, "
                                    "domain 0, global 0, context 0; host map 23, unmap 20"));
  ASSERT_TRUE(
      loop_.RunOnLoop([&] { vm_.hotplugged["hp0"].iommu->translation_enabled = false; }).ok());
  ASSERT_EQ(Run({"device", "hp0"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("iommu\ttranslation off (1:1)"));
}

TEST_F(VmmctlTest, AddAndRemoveDevices) {
  ASSERT_EQ(Run({"add", "hp0", "/sys/bus/pci/devices/0000:01:00.0", "--slot=4"}), kExitOk)
      << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("added hp0 at 0000:00:04.0 (host 0000:01:00.0)"));
  EXPECT_EQ(Run({"add", "hp0", "01:00.0"}), kExitBadRequest) << "ALREADY_EXISTS";
  EXPECT_EQ(Run({"add", "hp1", "01:00"}), kExitBadRequest);
  EXPECT_THAT(err_.str(), HasSubstr("INVALID_ARGUMENT"));
  EXPECT_EQ(Run({"remove", "nosuch"}), kExitBadRequest);
  EXPECT_THAT(err_.str(), HasSubstr("NOT_FOUND"));
  EXPECT_EQ(Run({"remove", "com1"}), kExitRefused);
  // Nobody plays the guest here: the removal times out and the device stays.
  EXPECT_EQ(Run({"remove", "hp0", "--wait=100ms"}), kExitTimeout);
  EXPECT_THAT(err_.str(), HasSubstr("DEADLINE_EXCEEDED"));
  EXPECT_THAT(err_.str(), HasSubstr("stays attached"));
  ASSERT_EQ(Run({"devices"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("hp0"));
  // Usage.
  EXPECT_EQ(Run({"add", "hp1"}), kExitUsage);
  EXPECT_EQ(Run({"add", "hp1", "01:00.1", "--slot=32"}), kExitUsage);
  EXPECT_EQ(Run({"remove"}), kExitUsage);
  EXPECT_EQ(Run({"remove", "hp0", "--wait=soon"}), kExitUsage);
  EXPECT_EQ(Run({"get", "--slot=3"}), kExitUsage);
}

TEST_F(VmmctlTest, AddDiskAndItsCounters) {
  ASSERT_EQ(Run({"add-disk", "vol0", "/var/vm/vol0.img", "--readonly", "--queues=2",
                 "--engine=io_uring"}),
            kExitOk)
      << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("added vol0 at 0000:00:01.0 (disk /var/vm/vol0.img)"));
  ASSERT_EQ(Run({"device", "vol0"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("virtio-blk"));
  EXPECT_THAT(out_.str(),
              HasSubstr("disk\t/var/vm/vol0.img, 1048576 bytes, read-only, 2 queue(s) (io_uring); "
                        "reads 0"));
  EXPECT_EQ(Run({"add-disk", "vol1", "/var/vm/vol0.img"}), kExitBadRequest) << "in use";
  EXPECT_EQ(Run({"add-disk", "vol1", "vol1.img"}), kExitBadRequest) << "not absolute";
  EXPECT_THAT(err_.str(), HasSubstr("absolute path"));
  // Usage.
  EXPECT_EQ(Run({"add-disk", "vol1"}), kExitUsage);
  EXPECT_EQ(Run({"add-disk", "vol1", "/a.img", "--queues=0"}), kExitUsage);
  EXPECT_EQ(Run({"add-disk", "vol1", "/a.img", "--queues=17"}), kExitUsage);
  EXPECT_EQ(Run({"add-disk", "vol1", "/a.img", "--engine=aio"}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("not threads or io_uring"));
  EXPECT_EQ(Run({"add", "hp1", "01:00.1", "--engine=threads"}), kExitUsage);
  EXPECT_EQ(Run({"add", "hp1", "01:00.1", "--readonly"}), kExitUsage);
  EXPECT_EQ(Run({"get", "--queues=2"}), kExitUsage);
}

TEST_F(VmmctlTest, AddNicAndItsCounters) {
  ASSERT_EQ(Run({"add-nic", "net1", "vmtap1", "--mac=02:00:00:00:00:01", "--queues=2", "--vhost"}),
            kExitOk)
      << err_.str();
  EXPECT_THAT(out_.str(),
              HasSubstr("added net1 at 0000:00:01.0 (tap vmtap1, mac 02:00:00:00:00:01)"));
  ASSERT_EQ(Run({"device", "net1"}), kExitOk);
  EXPECT_THAT(out_.str(), HasSubstr("virtio-net"));
  EXPECT_THAT(
      out_.str(),
      HasSubstr(
          "net\ttap vmtap1, mac 02:00:00:00:00:01, 2 queue pair(s) (vhost-net); rx 0 (0 bytes)"));
  EXPECT_EQ(Run({"add-nic", "net2", "vmtap1"}), kExitBadRequest) << "tap in use";
  EXPECT_EQ(Run({"add-nic", "net2", "vm/tap"}), kExitBadRequest) << "not a name";
  EXPECT_EQ(Run({"add-nic", "net2", "vmtap2", "--mac=01:00:00:00:00:01"}), kExitBadRequest);
  EXPECT_THAT(err_.str(), HasSubstr("multicast"));
  // Usage.
  EXPECT_EQ(Run({"add-nic", "net2"}), kExitUsage);
  EXPECT_EQ(Run({"add-nic", "net2", "vmtap2", "--engine=threads"}), kExitUsage);
  EXPECT_EQ(Run({"add-nic", "net2", "vmtap2", "--tx-bytes=0"}), kExitUsage);
  EXPECT_EQ(Run({"add-disk", "vol1", "/a.img", "--rx-packets=10"}), kExitUsage);
  ASSERT_EQ(Run({"add-nic", "net3", "vmtap3", "--rx-bytes=1000000", "--tx-packets=100"}), kExitOk)
      << err_.str();
  EXPECT_EQ(Run({"add-disk", "vol1", "/a.img", "--mac=02:00:00:00:00:01"}), kExitUsage);
}

TEST_F(VmmctlTest, AUserWithoutPermissionOnTheSocketIsToldSo) {
  // The socket is 0600 and root's; nobody cannot connect. The check runs before any gRPC call,
  // so the forked child never touches the parent's gRPC state.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
    std::ostringstream out, err;
    const int rc = RunVmmctl({"--socket=" + socket_, "get"}, out, err);
    const bool said = err.str().find(": permission denied") != std::string::npos;
    ::_exit(said ? rc : 101);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kExitPermission);
}

TEST_F(VmmctlTest, UsageErrorsAndAnUnreachableServer) {
  EXPECT_EQ(Run({}), kExitUsage);
  EXPECT_THAT(err_.str(), HasSubstr("usage: vmmctl"));
  EXPECT_EQ(Run({"reboot"}), kExitUsage);
  EXPECT_EQ(Run({"get", "--force"}), kExitUsage);
  EXPECT_EQ(Run({"shutdown", "--force", "--grace=5s"}), kExitUsage);
  EXPECT_EQ(Run({"--timeout=soon", "get"}), kExitUsage);
  EXPECT_EQ(Run({"--bogus", "get"}), kExitUsage);
  std::ostringstream out, err;
  EXPECT_EQ(RunVmmctl({"--socket=/tmp/no-such-vmm.sock", "--timeout=1s", "get"}, out, err),
            kExitUnreachable);
  EXPECT_THAT(err.str(), HasSubstr("UNAVAILABLE"));
}

TEST_F(VmmctlTest, WatchPrintsEventsUntilTheVmStops) {
  std::ostringstream out, err;
  int status = -1;
  std::thread watcher([&] { status = RunVmmctl({"--socket=" + socket_, "watch"}, out, err); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // Let the stream open.
  std::ostringstream o2, e2;
  ASSERT_EQ(RunVmmctl({"--socket=" + socket_, "pause"}, o2, e2), kExitOk);
  ASSERT_EQ(RunVmmctl({"--socket=" + socket_, "shutdown", "--force"}, o2, e2), kExitOk);
  watcher.join();
  EXPECT_EQ(status, kExitOk) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("state RUNNING -> PAUSED (Pause request)"));
  EXPECT_THAT(out.str(), HasSubstr("state PAUSED -> STOPPING (Shutdown request (forced))"));
}

}  // namespace
}  // namespace vmmkit::vmm
