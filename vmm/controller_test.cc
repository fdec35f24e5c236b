// VmController without gRPC: a fake VM and two loop executors (inline, and a real loop thread for
// the concurrency test, which the TSan pass checks).
#include "vmm/controller.h"

#include <atomic>
#include <thread>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "vmm/testing/fake_vm.h"

namespace vmmkit::vmm {
namespace {

using testing::FakeVm;
using ::testing::HasSubstr;
using testing::InlineLoop;
using testing::ThreadLoop;

class ControllerTest : public ::testing::Test {
 protected:
  FakeVm vm_;
  InlineLoop loop_;
  VmController c_{vm_, loop_};
};

TEST_F(ControllerTest, PauseAndResumeFollowTheStateMachine) {
  EXPECT_THAT(c_.Pause(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr("Pause: the VM is CREATED, not RUNNING")));
  c_.OnStarted();
  ASSERT_OK_AND_ASSIGN(VmStatus s, c_.Pause());
  EXPECT_EQ(s.state, VmState::kPaused);
  EXPECT_EQ(vm_.pauses, 1);
  EXPECT_THAT(c_.Pause(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                   HasSubstr("the VM is PAUSED, not RUNNING")));
  EXPECT_EQ(vm_.pauses, 1) << "a refused Pause never reaches the VM";
  ASSERT_OK_AND_ASSIGN(s, c_.Resume());
  EXPECT_EQ(s.state, VmState::kRunning);
  EXPECT_THAT(c_.Resume(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(ControllerTest, AFailedPauseLeavesTheVmRunning) {
  c_.OnStarted();
  vm_.pause_error = absl::InternalError("KVM_RUN would not stop");
  EXPECT_THAT(c_.Pause(), StatusIs(absl::StatusCode::kInternal, HasSubstr("Pause: KVM_RUN")));
  EXPECT_EQ(c_.state(), VmState::kRunning);
}

TEST_F(ControllerTest, GetVmAndListDevicesDescribeTheVm) {
  c_.OnStarted();
  c_.OnBootComplete(absl::Milliseconds(850));
  ASSERT_OK_AND_ASSIGN(VmStatus s, c_.GetVm());
  EXPECT_EQ(s.state, VmState::kRunning);
  EXPECT_EQ(s.config.cpus, 2u);
  EXPECT_EQ(s.boot_time, absl::Milliseconds(850));
  EXPECT_EQ(s.vcpu_tids.size(), 2u);
  ASSERT_OK_AND_ASSIGN(auto devices, c_.ListDevices());
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0].id, "com1");
  ASSERT_OK_AND_ASSIGN(DeviceSummary com1, c_.GetDevice("com1"));
  EXPECT_EQ(com1.id, "com1");
  EXPECT_THAT(c_.GetDevice("nosuch"), StatusIs(absl::StatusCode::kNotFound,
                                               HasSubstr("no device 'nosuch' (devices: com1)")));
  EXPECT_THAT(c_.GetDevice(""), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

TEST_F(ControllerTest, ForcedShutdownStopsAtOnceAndOnlyOnce) {
  c_.OnStarted();
  ASSERT_OK_AND_ASSIGN(auto events, c_.Watch());
  EXPECT_THAT(c_.Shutdown(/*graceful=*/false), IsOkAndHolds(VmState::kStopping));
  EXPECT_EQ(vm_.stopped, "Shutdown request (forced)");
  EXPECT_THAT(c_.Shutdown(false),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already STOPPING")));
  EXPECT_THAT(c_.Pause(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(c_.Watch(), StatusIs(absl::StatusCode::kUnavailable));
  // The watcher saw the state change, then its stream closed.
  auto e = events->Next(absl::ZeroDuration());
  ASSERT_TRUE(e.has_value());
  const auto* change = std::get_if<VmEvent::StateChanged>(&e->what);
  ASSERT_NE(change, nullptr);
  EXPECT_EQ(change->new_state, VmState::kStopping);
  EXPECT_FALSE(events->Next(absl::ZeroDuration()).has_value());
  EXPECT_TRUE(events->closed());
}

TEST_F(ControllerTest, GracefulShutdownAsksTheGuestThenStopsAtTheDeadline) {
  c_.OnStarted();
  EXPECT_THAT(c_.Shutdown(true, absl::Minutes(11)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not in (0, 10m]")));
  EXPECT_THAT(c_.Shutdown(true, absl::Seconds(-1)), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c_.Shutdown(true), IsOkAndHolds(VmState::kRunning));
  EXPECT_EQ(vm_.power_button, 1);
  // A second graceful request is refused (and presses nothing); a forced one would still go.
  EXPECT_THAT(c_.Shutdown(true), StatusIs(absl::StatusCode::kFailedPrecondition,
                                          HasSubstr("graceful shutdown is already in progress")));
  EXPECT_EQ(vm_.power_button, 1);
  ASSERT_EQ(loop_.delayed.size(), 1u);
  EXPECT_EQ(loop_.delayed[0].first, absl::Seconds(30));
  loop_.delayed[0].second();  // The deadline passes.
  EXPECT_THAT(vm_.stopped, HasSubstr("did not power off within 30s"));
  EXPECT_EQ(c_.state(), VmState::kStopping);
}

TEST_F(ControllerTest, GracefulShutdownWithoutAPowerButtonSaysSo) {
  c_.OnStarted();
  vm_.power_off_error = absl::UnimplementedError("no ACPI power button");
  EXPECT_THAT(c_.Shutdown(true),
              StatusIs(absl::StatusCode::kUnimplemented, HasSubstr("use a forced shutdown")));
  EXPECT_EQ(c_.state(), VmState::kRunning);
}

TEST_F(ControllerTest, RequestsAfterTheLoopExitedAreUnavailable) {
  loop_.gone = true;
  EXPECT_THAT(c_.GetVm(), StatusIs(absl::StatusCode::kUnavailable,
                                   HasSubstr("GetVm: the VM is shutting down")));
  EXPECT_THAT(c_.ListDevices(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST_F(ControllerTest, WatchersAreBoundedAndSlowOnesLearnWhatTheyMissed) {
  std::vector<std::shared_ptr<EventStream>> streams;
  for (int i = 0; i < VmController::kMaxWatchers; ++i) {
    ASSERT_OK_AND_ASSIGN(auto s, c_.Watch());
    streams.push_back(s);
  }
  EXPECT_THAT(c_.Watch(), StatusIs(absl::StatusCode::kResourceExhausted));
  streams.pop_back();  // A watcher that goes away frees its place.
  ASSERT_OK_AND_ASSIGN(auto slow, c_.Watch());
  for (size_t i = 0; i < EventStream::kCapacity + 10; ++i) c_.OnError(absl::InternalError("x"));
  auto first = slow->Next(absl::ZeroDuration());
  ASSERT_TRUE(first.has_value());
  const auto* err = std::get_if<VmEvent::Error>(&first->what);
  ASSERT_NE(err, nullptr);
  EXPECT_THAT(err->status.message(), HasSubstr("10 events were dropped"));
}

// A real loop thread, requests from several threads, a watcher reading concurrently.
TEST(ControllerConcurrencyTest, RequestsFromManyThreadsAreSerializedOnTheLoop) {
  FakeVm vm;
  ThreadLoop loop;
  VmController c(vm, loop);
  ASSERT_OK(loop.RunOnLoop([&] { c.OnStarted(); }));
  ASSERT_OK_AND_ASSIGN(auto events, c.Watch());
  std::atomic<int> ok_pauses{0}, ok_resumes{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (c.Pause().ok()) ++ok_pauses;
        if (c.Resume().ok()) ++ok_resumes;
        (void)c.GetVm();
      }
    });
  }
  std::atomic<bool> clients_done{false};
  int seen = 0;
  std::thread reader([&] {
    while (!clients_done.load()) {
      if (events->Next(absl::Milliseconds(10))) ++seen;
    }
  });
  for (auto& t : clients) t.join();
  clients_done = true;
  reader.join();
  EXPECT_GT(seen, 0);
  // Every accepted Pause reached the VM once and was matched by a Resume (or is the last one).
  EXPECT_EQ(vm.pauses, ok_pauses.load());
  EXPECT_EQ(vm.resumes, ok_resumes.load());
  EXPECT_LE(ok_pauses - ok_resumes, 1);
  EXPECT_GT(ok_pauses.load(), 0);
}

}  // namespace
}  // namespace vmmkit::vmm

namespace vmmkit::vmm {
namespace {

using ::testing::ElementsAre;

// The guest's side of a removal: release the device (the VMM then reports it gone) after a while.
std::thread GuestReleasesAfter(VmController& c, FakeVm& vm, const std::string& id,
                               absl::Duration delay) {
  return std::thread([&c, &vm, id, delay] {
    absl::SleepFor(delay);
    DeviceSummary d = vm.hotplugged.at(id);
    c.OnDeviceEvent({VmEvent::DeviceChanged::Type::kRemoved, d, "guest ejected"});
  });
}

TEST_F(ControllerTest, AddDeviceValidatesItsArgumentsAndPublishesTheOutcome) {
  EXPECT_THAT(c_.AddDevice("hp0", "0000:01:00.0", 0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not RUNNING")));
  c_.OnStarted();
  ASSERT_OK_AND_ASSIGN(auto events, c_.Watch());
  EXPECT_THAT(c_.AddDevice("", "0000:01:00.0", 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("id must be")));
  EXPECT_THAT(c_.AddDevice("a b", "0000:01:00.0", 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c_.AddDevice("hp0", "01:00", 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("AddDevice: host")));
  EXPECT_THAT(c_.AddDevice("hp0", "/sys/class/net/eth0", 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c_.AddDevice("hp0", "01:00.0", 32),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("slot 32")));
  ASSERT_OK_AND_ASSIGN(DeviceSummary d,
                       c_.AddDevice("hp0", "/sys/bus/pci/devices/0000:01:00.0/", 3));
  EXPECT_EQ(d.host_bdf, "0000:01:00.0");
  EXPECT_EQ(d.guest_bdf, "0000:00:03.0");
  vm_.add_error = absl::FailedPreconditionError("open device: not bound to vfio-pci");
  EXPECT_THAT(c_.AddDevice("hp1", "01:00.1", 0),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("AddDevice hp1: open device: not bound to vfio-pci")));
  std::vector<VmEvent::DeviceChanged::Type> types;
  while (auto e = events->Next(absl::ZeroDuration())) {
    if (auto* dc = std::get_if<VmEvent::DeviceChanged>(&e->what)) types.push_back(dc->type);
  }
  EXPECT_THAT(types, ElementsAre(VmEvent::DeviceChanged::Type::kAdded,
                                 VmEvent::DeviceChanged::Type::kFailed));
}

TEST_F(ControllerTest, AddNicValidatesItsArgumentsAndPublishesTheOutcome) {
  EXPECT_THAT(c_.AddNic("net1", "vmtap1", "", 0, 0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not RUNNING")));
  c_.OnStarted();
  ASSERT_OK_AND_ASSIGN(auto events, c_.Watch());
  EXPECT_THAT(c_.AddNic("a b", "vmtap1", "", 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("id must be")));
  EXPECT_THAT(c_.AddNic("net1", "", "", 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("virtio_net.tap")));
  EXPECT_THAT(c_.AddNic("net1", "../tap", "", 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("virtio_net.tap")));
  EXPECT_THAT(c_.AddNic("net1", "vmtap1", "52:54", 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("virtio_net.mac")));
  EXPECT_THAT(c_.AddNic("net1", "vmtap1", "", 17, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("virtio_net.queue_pairs")));
  EXPECT_THAT(c_.AddNic("net1", "vmtap1", "", 1, 32),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("slot 32")));
  EXPECT_THAT(c_.AddNic("net1", "vmtap1", "", 1, 0, /*vhost=*/true, {.tx_bytes = 1000}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no limiter")));
  EXPECT_THAT(c_.AddNic("net1", "vmtap1", "", 1, 0, false, {.rx_packets = (uint64_t{1} << 40) + 1}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("over 2^40")));
  ASSERT_OK_AND_ASSIGN(DeviceSummary d, c_.AddNic("net1", "vmtap1", "02:00:00:00:00:01", 0, 4));
  EXPECT_EQ(d.kind, DeviceSummary::Kind::kVirtioNet);
  ASSERT_TRUE(d.net.has_value());
  EXPECT_EQ(d.net->tap, "vmtap1");
  EXPECT_EQ(d.net->mac, (std::array<uint8_t, 6>{2, 0, 0, 0, 0, 1}));
  EXPECT_EQ(d.net->queue_pairs, 1u) << "0 means one pair";
  EXPECT_THAT(c_.AddNic("net2", "vmtap1", "", 2, 0),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("AddDevice net2")));
  std::vector<std::pair<VmEvent::DeviceChanged::Type, std::string>> seen;
  while (auto e = events->Next(absl::ZeroDuration())) {
    if (auto* dc = std::get_if<VmEvent::DeviceChanged>(&e->what)) {
      ASSERT_TRUE(dc->device.net.has_value()) << "a NIC's events say which tap";
      EXPECT_EQ(dc->device.kind, DeviceSummary::Kind::kVirtioNet);
      seen.emplace_back(dc->type, dc->device.net->tap);
    }
  }
  EXPECT_THAT(seen, ElementsAre(::testing::Pair(VmEvent::DeviceChanged::Type::kAdded, "vmtap1"),
                                ::testing::Pair(VmEvent::DeviceChanged::Type::kFailed, "vmtap1")));
}

TEST_F(ControllerTest, AddDiskValidatesItsArgumentsAndPublishesTheOutcome) {
  EXPECT_THAT(c_.AddDisk("vol0", "/var/vm/vol0.img", false, 0, 0),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("not RUNNING")));
  c_.OnStarted();
  ASSERT_OK_AND_ASSIGN(auto events, c_.Watch());
  EXPECT_THAT(c_.AddDisk("a b", "/var/vm/vol0.img", false, 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("id must be")));
  EXPECT_THAT(c_.AddDisk("vol0", "vol0.img", false, 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not an absolute path")));
  EXPECT_THAT(c_.AddDisk("vol0", "", false, 0, 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c_.AddDisk("vol0", std::string("/a\0b", 4), false, 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c_.AddDisk("vol0", "/" + std::string(5000, 'a'), false, 0, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("(5001 bytes)")));
  EXPECT_THAT(c_.AddDisk("vol0", "/var/vm/vol0.img", false, 17, 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("queues 17")));
  EXPECT_THAT(c_.AddDisk("vol0", "/var/vm/vol0.img", false, 1, 32),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("slot 32")));
  ASSERT_OK_AND_ASSIGN(DeviceSummary d, c_.AddDisk("vol0", "/var/vm/vol0.img", true, 0, 4));
  EXPECT_EQ(d.kind, DeviceSummary::Kind::kVirtioBlk);
  EXPECT_EQ(d.guest_bdf, "0000:00:04.0");
  ASSERT_TRUE(d.disk.has_value());
  EXPECT_EQ(d.disk->path, "/var/vm/vol0.img");
  EXPECT_TRUE(d.disk->read_only);
  EXPECT_EQ(d.disk->queues, 1u) << "0 means one queue";
  EXPECT_THAT(c_.AddDisk("vol1", "/var/vm/vol0.img", false, 2, 0),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("AddDevice vol1")));
  std::vector<std::pair<VmEvent::DeviceChanged::Type, std::string>> seen;
  while (auto e = events->Next(absl::ZeroDuration())) {
    if (auto* dc = std::get_if<VmEvent::DeviceChanged>(&e->what)) {
      ASSERT_TRUE(dc->device.disk.has_value()) << "a disk's events say which image";
      EXPECT_EQ(dc->device.kind, DeviceSummary::Kind::kVirtioBlk);
      seen.emplace_back(dc->type, dc->device.disk->path);
    }
  }
  EXPECT_THAT(
      seen,
      ElementsAre(::testing::Pair(VmEvent::DeviceChanged::Type::kAdded, "/var/vm/vol0.img"),
                  ::testing::Pair(VmEvent::DeviceChanged::Type::kFailed, "/var/vm/vol0.img")));
}

TEST_F(ControllerTest, RemoveDeviceReturnsOnceTheGuestReleasedIt) {
  c_.OnStarted();
  ASSERT_OK(c_.AddDevice("hp0", "01:00.0", 0).status());
  std::thread guest = GuestReleasesAfter(c_, vm_, "hp0", absl::Milliseconds(50));
  ASSERT_OK_AND_ASSIGN(DeviceSummary d, c_.RemoveDevice("hp0", absl::Seconds(10)));
  guest.join();
  EXPECT_EQ(d.id, "hp0");
  EXPECT_THAT(vm_.eject_requests, ElementsAre("hp0"));
  EXPECT_TRUE(vm_.cancelled.empty());
}

TEST_F(ControllerTest, RemoveDeviceTimesOutAndTheDeviceStays) {
  c_.OnStarted();
  ASSERT_OK(c_.AddDevice("hp0", "01:00.0", 0).status());
  EXPECT_THAT(c_.RemoveDevice("hp0", absl::Milliseconds(30)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("did not release hp0 within 30ms; it stays attached")));
  EXPECT_THAT(vm_.cancelled, ElementsAre("hp0"));
  // Not stuck as "being removed": a new request is accepted.
  std::thread guest = GuestReleasesAfter(c_, vm_, "hp0", absl::Milliseconds(20));
  EXPECT_OK(c_.RemoveDevice("hp0", absl::Seconds(10)).status());
  guest.join();
}

TEST_F(ControllerTest, RemoveDeviceReleasedAsTheTimeoutEndsSucceeds) {
  c_.OnStarted();
  ASSERT_OK(c_.AddDevice("hp0", "01:00.0", 0).status());
  ASSERT_OK_AND_ASSIGN(auto events, c_.Watch());
  // The guest has released it, but its kRemoved is still on the way when time runs out: there is
  // nothing left to withdraw, so the removal has succeeded.
  vm_.released_unreported.insert("hp0");
  ASSERT_OK_AND_ASSIGN(DeviceSummary d, c_.RemoveDevice("hp0", absl::Milliseconds(30)));
  EXPECT_EQ(d.id, "hp0");
  EXPECT_THAT(vm_.cancelled, ElementsAre("hp0"));
  // The late event is published, and a later request for the same id is not taken for this one.
  c_.OnDeviceEvent({VmEvent::DeviceChanged::Type::kRemoved, d, "guest ejected"});
  std::vector<VmEvent::DeviceChanged::Type> types;
  while (auto e = events->Next(absl::ZeroDuration())) {
    if (auto* dc = std::get_if<VmEvent::DeviceChanged>(&e->what)) types.push_back(dc->type);
  }
  EXPECT_THAT(types, ElementsAre(VmEvent::DeviceChanged::Type::kRemoved));
  vm_.released_unreported.clear();
  EXPECT_THAT(c_.RemoveDevice("hp0", absl::Milliseconds(10)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST_F(ControllerTest, AWaitingRemoveDeviceEndsWhenTheVmStops) {
  c_.OnStarted();
  ASSERT_OK(c_.AddDevice("hp0", "01:00.0", 0).status());
  absl::StatusOr<DeviceSummary> removed = absl::InternalError("not run");
  absl::Time returned;
  std::thread remover([&] {
    removed = c_.RemoveDevice("hp0", VmController::kMaxRemoveTimeout);
    returned = absl::Now();
  });
  while (vm_.eject_count.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  const absl::Time stopped = absl::Now();
  c_.OnStopping("Shutdown request (forced)");
  remover.join();
  EXPECT_THAT(removed, StatusIs(absl::StatusCode::kUnavailable,
                                HasSubstr("the VM stopped before the guest released hp0")));
  EXPECT_LT(returned - stopped, absl::Seconds(30));  // Not the time it asked for.
}

TEST_F(ControllerTest, ASecondRemoveWhileTheFirstWaitsIsRefused) {
  c_.OnStarted();
  ASSERT_OK(c_.AddDevice("hp0", "01:00.0", 0).status());
  absl::Status first;
  std::thread remover([&] { first = c_.RemoveDevice("hp0", absl::Seconds(10)).status(); });
  while (vm_.eject_count.load() == 0) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_THAT(c_.RemoveDevice("hp0"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("already being removed")));
  c_.OnDeviceEvent({VmEvent::DeviceChanged::Type::kRemoved, vm_.hotplugged.at("hp0"), "guest"});
  remover.join();
  EXPECT_OK(first);
}

TEST_F(ControllerTest, RemoveDeviceRefusals) {
  c_.OnStarted();
  EXPECT_THAT(c_.RemoveDevice("nosuch"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no device nosuch")));
  EXPECT_THAT(c_.RemoveDevice("com1"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("cannot be removed")));
  EXPECT_THAT(c_.RemoveDevice(""), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(c_.RemoveDevice("hp0", absl::Minutes(6)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not in (0, 5m]")));
  ASSERT_OK(c_.AddDevice("hp0", "01:00.0", 0).status());
  ASSERT_OK(c_.Pause().status());
  EXPECT_THAT(c_.RemoveDevice("hp0"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("paused guest")));
  EXPECT_TRUE(vm_.eject_requests.empty());
}

}  // namespace
}  // namespace vmmkit::vmm
