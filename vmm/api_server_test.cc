// ApiServer over real gRPC on a Unix socket, with a fake VM behind the
// controller: codes, socket rules, health, reflection, event streams.
#include "vmm/api_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/io/coded_stream.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/vmm/v1/vmm.grpc.pb.h"
#include "vmm/testing/fake_vm.h"

namespace vmmkit::vmm {
namespace {

using testing::FakeVm;
using ::testing::HasSubstr;
using testing::ThreadLoop;
namespace pb = ::vmmkit::vmm::v1;

std::string TempPath(const std::string& name) { return testing::ShortTempPath(name); }

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = TempPath("vmm.sock");
    ::unlink(path_.c_str());
    ASSERT_OK(loop_.RunOnLoop([&] { controller_.OnStarted(); }));
    auto server = ApiServer::StartUnix(controller_, path_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    channel_ = grpc::CreateChannel("unix:" + path_, grpc::InsecureChannelCredentials());
    stub_ = pb::VmService::NewStub(channel_);
  }
  void TearDown() override { server_.reset(); }

  FakeVm vm_;
  ThreadLoop loop_;
  VmController controller_{vm_, loop_};
  std::string path_;
  std::unique_ptr<ApiServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<pb::VmService::Stub> stub_;
};

TEST_F(ApiServerTest, GetPauseResumeWithTheSpecifiedCodes) {
  grpc::ClientContext c1;
  pb::Vm vm;
  ASSERT_TRUE(stub_->GetVm(&c1, {}, &vm).ok());
  EXPECT_EQ(vm.state(), pb::VM_STATE_RUNNING);
  EXPECT_EQ(vm.config().vcpus(), 2u);
  EXPECT_EQ(vm.vcpus_size(), 2);
  ASSERT_EQ(vm.devices_size(), 1);
  EXPECT_EQ(vm.devices(0).kind(), pb::DEVICE_KIND_PLATFORM);
  // Every resource count, each in its own field.
  const pb::Resources& r = vm.resources();
  EXPECT_EQ(std::vector<uint64_t>({r.dma_mappings(), r.dma_mapped_bytes(), r.msi_routes(),
                                   r.memory_listeners(), r.open_fds(), r.threads(),
                                   r.kvm_memory_slots(), r.heap_in_use_bytes()}),
            std::vector<uint64_t>({1, 2, 3, 4, 5, 6, 7, 8}));

  grpc::ClientContext c2, c3, c4;
  ASSERT_TRUE(stub_->Pause(&c2, {}, &vm).ok());
  EXPECT_EQ(vm.state(), pb::VM_STATE_PAUSED);
  grpc::Status s = stub_->Pause(&c3, {}, &vm);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("PAUSED, not RUNNING"));
  ASSERT_TRUE(stub_->Resume(&c4, {}, &vm).ok());
  EXPECT_EQ(vm.state(), pb::VM_STATE_RUNNING);
  grpc::ClientContext c5;
  pb::ListDevicesResponse devices;
  ASSERT_TRUE(stub_->ListDevices(&c5, {}, &devices).ok());
  EXPECT_EQ(devices.devices(0).id(), "com1");
}

TEST_F(ApiServerTest, ADiskIsAddedAndReportsItsImageAndCounters) {
  grpc::ClientContext c;
  pb::AddDeviceRequest r;
  r.set_id("vol0");
  r.mutable_virtio_blk()->set_path("/var/vm/vol0.img");
  r.mutable_virtio_blk()->set_read_only(true);
  r.mutable_virtio_blk()->set_queues(4);
  r.mutable_virtio_blk()->set_engine(pb::DISK_ENGINE_IO_URING);
  pb::Device d;
  ASSERT_TRUE(stub_->AddDevice(&c, r, &d).ok());
  EXPECT_EQ(d.disk().engine(), pb::DISK_ENGINE_IO_URING);
  EXPECT_EQ(d.kind(), pb::DEVICE_KIND_VIRTIO_BLK);
  EXPECT_EQ(d.host_bdf(), "");
  EXPECT_EQ(d.disk().path(), "/var/vm/vol0.img");
  EXPECT_TRUE(d.disk().read_only());
  EXPECT_EQ(d.disk().queues(), 4u);
  EXPECT_EQ(d.disk().capacity_bytes(), 1u << 20);
  grpc::ClientContext c2;
  pb::GetDeviceRequest g;
  g.set_id("vol0");
  pb::Device got;
  ASSERT_TRUE(stub_->GetDevice(&c2, g, &got).ok());
  EXPECT_EQ(got.disk().path(), "/var/vm/vol0.img");

  // No engine named: vmm's default; one out of the enum's range: refused.
  grpc::ClientContext c3;
  r.set_id("vol1");
  r.mutable_virtio_blk()->set_path("/var/vm/vol1.img");
  r.mutable_virtio_blk()->clear_engine();
  ASSERT_TRUE(stub_->AddDevice(&c3, r, &d).ok());
  EXPECT_EQ(d.disk().engine(), pb::DISK_ENGINE_THREADS);
  grpc::ClientContext c4;
  r.set_id("vol2");
  r.mutable_virtio_blk()->set_path("/var/vm/vol2.img");
  r.mutable_virtio_blk()->set_engine(static_cast<pb::DiskEngine>(7));
  const grpc::Status bad = stub_->AddDevice(&c4, r, &d);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("virtio_blk.engine 7 is not a DiskEngine"));
}

TEST_F(ApiServerTest, ANicIsAddedAndReportsItsTapAndCounters) {
  grpc::ClientContext c;
  pb::AddDeviceRequest r;
  r.set_id("net1");
  r.mutable_virtio_net()->set_tap("vmtap1");
  r.mutable_virtio_net()->set_mac("02:00:00:00:00:0a");
  r.mutable_virtio_net()->set_queue_pairs(2);
  pb::Device d;
  ASSERT_TRUE(stub_->AddDevice(&c, r, &d).ok());
  EXPECT_EQ(d.kind(), pb::DEVICE_KIND_VIRTIO_NET);
  EXPECT_EQ(d.net().tap(), "vmtap1");
  EXPECT_EQ(d.net().mac(), "02:00:00:00:00:0a");
  EXPECT_EQ(d.net().queue_pairs(), 2u);
  EXPECT_EQ(d.net().rx_packets(), 0u);
  grpc::ClientContext c2;
  r.set_id("net2");
  r.mutable_virtio_net()->set_tap("vmtap2");
  r.mutable_virtio_net()->set_queue_pairs(17);
  const grpc::Status bad = stub_->AddDevice(&c2, r, &d);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("virtio_net.queue_pairs: 17 is not 1-16"));
}

TEST_F(ApiServerTest, ADeviceBehindTheGuestIommuReportsWhatItDoes) {
  DeviceSummary d{"hp0",
                  DeviceSummary::Kind::kVfioPci,
                  "0000:00:03.0",
                  "0000:01:00.0",
                  "vfio-pci",
                  DeviceIommuSummary{.domain = 7,
                                     .translation_enabled = true,
                                     .shadowed_mappings = 3,
                                     .page_invalidations = 40,
                                     .domain_invalidations = 2,
                                     .global_invalidations = 1,
                                     .context_invalidations = 4,
                                     .host_map_calls = 23,
                                     .host_unmap_calls = 20},
                  std::nullopt,
                  std::nullopt,
                  std::nullopt};
  ASSERT_TRUE(loop_.RunOnLoop([&] { vm_.hotplugged["hp0"] = d; }).ok());  // The VM's thread.
  grpc::ClientContext c;
  pb::GetDeviceRequest req;
  req.set_id("hp0");
  pb::Device got;
  ASSERT_TRUE(stub_->GetDevice(&c, req, &got).ok());
  ASSERT_TRUE(got.has_iommu());
  EXPECT_TRUE(got.iommu().has_domain());
  EXPECT_EQ(got.iommu().domain(), 7u);
  EXPECT_TRUE(got.iommu().translation_enabled());
  EXPECT_EQ(got.iommu().shadowed_mappings(), 3u);
  EXPECT_EQ(got.iommu().page_invalidations(), 40u);
  EXPECT_EQ(got.iommu().domain_invalidations(), 2u);
  EXPECT_EQ(got.iommu().global_invalidations(), 1u);
  EXPECT_EQ(got.iommu().context_invalidations(), 4u);
  EXPECT_EQ(got.iommu().host_map_calls(), 23u);
  EXPECT_EQ(got.iommu().host_unmap_calls(), 20u);
  grpc::ClientContext c2;
  pb::Vm vm;
  ASSERT_TRUE(stub_->GetVm(&c2, {}, &vm).ok());
  EXPECT_FALSE(vm.devices(0).has_iommu()) << "com1 is behind no IOMMU";
}

// Every RPC, each kind of malformed input: the specified code, an error message of bounded size
// whatever the request echoed, and the VM still running afterwards.
TEST_F(ApiServerTest, BadRequestMatrix) {
  using Code = grpc::StatusCode;
  const std::string huge(5000, 'x');
  auto duration = [](int64_t seconds, int32_t nanos) {
    google::protobuf::Duration d;
    d.set_seconds(seconds);
    d.set_nanos(nanos);
    return d;
  };
  auto get_device = [&](const std::string& id) {
    grpc::ClientContext c;
    pb::GetDeviceRequest r;
    r.set_id(id);
    pb::Device out;
    return stub_->GetDevice(&c, r, &out);
  };
  auto add = [&](const std::string& id, const std::string& host, uint32_t slot) {
    grpc::ClientContext c;
    pb::AddDeviceRequest r;
    r.set_id(id);
    r.set_host(host);
    r.set_slot(slot);
    pb::Device out;
    return stub_->AddDevice(&c, r, &out);
  };
  // A disk, or (with no path) a request naming no device at all.
  auto add_disk = [&](const std::string& id, std::optional<std::string> path, uint32_t queues) {
    grpc::ClientContext c;
    pb::AddDeviceRequest r;
    r.set_id(id);
    if (path) {
      r.mutable_virtio_blk()->set_path(*path);
      r.mutable_virtio_blk()->set_queues(queues);
    }
    pb::Device out;
    return stub_->AddDevice(&c, r, &out);
  };
  auto remove = [&](const std::string& id, std::optional<google::protobuf::Duration> timeout) {
    grpc::ClientContext c;
    pb::RemoveDeviceRequest r;
    r.set_id(id);
    if (timeout) *r.mutable_timeout() = *timeout;
    pb::RemoveDeviceResponse out;
    return stub_->RemoveDevice(&c, r, &out);
  };
  auto shutdown = [&](int mode, std::optional<google::protobuf::Duration> timeout) {
    grpc::ClientContext c;
    pb::ShutdownRequest r;
    r.set_mode(static_cast<pb::ShutdownRequest::Mode>(mode));
    if (timeout) *r.mutable_graceful_timeout() = *timeout;
    pb::ShutdownResponse out;
    return stub_->Shutdown(&c, r, &out);
  };
  auto state_call = [&](bool pause) {
    grpc::ClientContext c;
    pb::Vm out;
    return pause ? stub_->Pause(&c, {}, &out) : stub_->Resume(&c, {}, &out);
  };
  // A call the service does not have, or bytes that are no request, through the generic stub.
  auto raw = [&](const std::string& method, const std::string& bytes) {
    grpc::GenericStub generic(channel_);
    grpc::ClientContext c;
    grpc::CompletionQueue cq;
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::Status status;
    auto call = generic.PrepareUnaryCall(&c, method, request, &cq);
    call->StartCall();
    call->Finish(&response, &status, reinterpret_cast<void*>(1));
    void* tag;
    bool ok;
    EXPECT_TRUE(cq.Next(&tag, &ok));
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
    return status;
  };
  struct Case {
    const char* what;
    std::function<grpc::Status()> call;
    Code want;
  };
  const Case cases[] = {
      {"GetDevice: empty id", [&] { return get_device(""); }, Code::INVALID_ARGUMENT},
      {"GetDevice: unknown id", [&] { return get_device("nosuch"); }, Code::NOT_FOUND},
      {"GetDevice: oversized id", [&] { return get_device(huge); }, Code::NOT_FOUND},
      {"AddDevice: empty id", [&] { return add("", "0000:00:03.0", 0); }, Code::INVALID_ARGUMENT},
      {"AddDevice: bad id", [&] { return add("a b", "0000:00:03.0", 0); }, Code::INVALID_ARGUMENT},
      {"AddDevice: oversized id", [&] { return add(huge, "0000:00:03.0", 0); },
       Code::INVALID_ARGUMENT},
      {"AddDevice: empty host", [&] { return add("hp0", "", 0); }, Code::INVALID_ARGUMENT},
      {"AddDevice: malformed host", [&] { return add("hp0", "zz:zz.z", 0); },
       Code::INVALID_ARGUMENT},
      {"AddDevice: oversized host", [&] { return add("hp0", huge, 0); }, Code::INVALID_ARGUMENT},
      {"AddDevice: device 32", [&] { return add("hp0", "0000:00:20.0", 0); },
       Code::INVALID_ARGUMENT},
      {"AddDevice: slot 32", [&] { return add("hp0", "0000:00:03.0", 32); },
       Code::INVALID_ARGUMENT},
      {"AddDevice: slot 2^32-1", [&] { return add("hp0", "0000:00:03.0", ~0u); },
       Code::INVALID_ARGUMENT},
      {"AddDevice: a request over the size limit",
       [&] { return add(std::string(ApiServer::kMaxRequestBytes + 1, 'x'), "0000:00:03.0", 0); },
       Code::RESOURCE_EXHAUSTED},
      {"AddDevice: no device", [&] { return add_disk("vol0", std::nullopt, 0); },
       Code::INVALID_ARGUMENT},
      {"AddDevice: a relative image path", [&] { return add_disk("vol0", "vol0.img", 0); },
       Code::INVALID_ARGUMENT},
      {"AddDevice: an empty image path", [&] { return add_disk("vol0", "", 0); },
       Code::INVALID_ARGUMENT},
      {"AddDevice: an oversized image path", [&] { return add_disk("vol0", "/" + huge, 0); },
       Code::INVALID_ARGUMENT},
      {"AddDevice: 17 queues", [&] { return add_disk("vol0", "/vol0.img", 17); },
       Code::INVALID_ARGUMENT},
      {"AddDevice: a disk with a bad id", [&] { return add_disk("a b", "/vol0.img", 1); },
       Code::INVALID_ARGUMENT},
      {"RemoveDevice: empty id", [&] { return remove("", std::nullopt); }, Code::INVALID_ARGUMENT},
      {"RemoveDevice: bad id", [&] { return remove("no such!", std::nullopt); },
       Code::INVALID_ARGUMENT},
      {"RemoveDevice: oversized id", [&] { return remove(huge, std::nullopt); },
       Code::INVALID_ARGUMENT},
      {"RemoveDevice: unknown id", [&] { return remove("nosuch", std::nullopt); }, Code::NOT_FOUND},
      {"RemoveDevice: a platform device", [&] { return remove("com1", std::nullopt); },
       Code::FAILED_PRECONDITION},
      {"RemoveDevice: negative timeout", [&] { return remove("hp0", duration(-1, 0)); },
       Code::INVALID_ARGUMENT},
      {"RemoveDevice: zero timeout", [&] { return remove("hp0", duration(0, 0)); },
       Code::INVALID_ARGUMENT},
      {"RemoveDevice: nanos out of range", [&] { return remove("hp0", duration(1, 1000000000)); },
       Code::INVALID_ARGUMENT},
      {"RemoveDevice: timeout over 5 min", [&] { return remove("hp0", duration(301, 0)); },
       Code::INVALID_ARGUMENT},
      {"Shutdown: no mode", [&] { return shutdown(0, std::nullopt); }, Code::INVALID_ARGUMENT},
      {"Shutdown: unknown mode", [&] { return shutdown(7, std::nullopt); }, Code::INVALID_ARGUMENT},
      {"Shutdown: forced with a timeout", [&] { return shutdown(2, duration(5, 0)); },
       Code::INVALID_ARGUMENT},
      {"Shutdown: timeout over 10 min", [&] { return shutdown(1, duration(601, 0)); },
       Code::INVALID_ARGUMENT},
      {"Shutdown: negative timeout", [&] { return shutdown(1, duration(-5, 0)); },
       Code::INVALID_ARGUMENT},
      {"Shutdown: negative nanos", [&] { return shutdown(1, duration(1, -1)); },
       Code::INVALID_ARGUMENT},
      {"Resume while running", [&] { return state_call(false); }, Code::FAILED_PRECONDITION},
      {"an unknown method", [&] { return raw("/vmmkit.vmm.v1.VmService/NoSuch", ""); },
       Code::UNIMPLEMENTED},
      {"an unknown service", [&] { return raw("/nosuch.Service/GetVm", ""); }, Code::UNIMPLEMENTED},
      // Field 1 (id) as a varint, the wrong wire type: an unknown field, so no id.
      {"GetDevice: an id of the wrong type",
       [&] { return raw("/vmmkit.vmm.v1.VmService/GetDevice", std::string("\x08\x01", 2)); },
       Code::INVALID_ARGUMENT},
      // Field 1 announcing 5 bytes and carrying 2: no message at all.
      {"GetDevice: bytes that are no request",
       [&] {
         return raw("/vmmkit.vmm.v1.VmService/GetDevice", std::string("\x0a\x05"
                                                                      "ab",
                                                                      4));
       },
       Code::INTERNAL},
      {"Pause", [&] { return state_call(true); }, Code::OK},
      {"Pause while paused", [&] { return state_call(true); }, Code::FAILED_PRECONDITION},
      {"AddDevice while paused", [&] { return add("hp0", "0000:00:03.0", 0); },
       Code::FAILED_PRECONDITION},
      {"RemoveDevice while paused", [&] { return remove("com1", std::nullopt); },
       Code::FAILED_PRECONDITION},
      {"Resume", [&] { return state_call(false); }, Code::OK},
  };
  for (const Case& c : cases) {
    const grpc::Status s = c.call();
    EXPECT_EQ(s.error_code(), c.want) << c.what << ": " << s.error_message();
    EXPECT_LE(s.error_message().size(), 512u) << c.what << ": the error echoes too much";
  }
  grpc::ClientContext c;
  pb::Vm vm;
  ASSERT_TRUE(stub_->GetVm(&c, {}, &vm).ok());
  EXPECT_EQ(vm.state(), pb::VM_STATE_RUNNING) << "the VM kept running through it all";
  EXPECT_TRUE(vm_.hotplugged.empty()) << "no bad request attached anything";
}

TEST_F(ApiServerTest, ShutdownValidatesItsRequestAndHappensOnce) {
  pb::ShutdownResponse resp;
  grpc::ClientContext c1;
  EXPECT_EQ(stub_->Shutdown(&c1, {}, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  pb::ShutdownRequest forced_with_timeout;
  forced_with_timeout.set_mode(pb::ShutdownRequest::MODE_FORCED);
  forced_with_timeout.mutable_graceful_timeout()->set_seconds(5);
  grpc::ClientContext c2;
  EXPECT_EQ(stub_->Shutdown(&c2, forced_with_timeout, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  pb::ShutdownRequest too_long;
  too_long.set_mode(pb::ShutdownRequest::MODE_GRACEFUL);
  too_long.mutable_graceful_timeout()->set_seconds(601);
  grpc::ClientContext c3;
  EXPECT_EQ(stub_->Shutdown(&c3, too_long, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  pb::ShutdownRequest forced;
  forced.set_mode(pb::ShutdownRequest::MODE_FORCED);
  grpc::ClientContext c4, c5, c6;
  ASSERT_TRUE(stub_->Shutdown(&c4, forced, &resp).ok());
  EXPECT_EQ(resp.state(), pb::VM_STATE_STOPPING);
  EXPECT_EQ(stub_->Shutdown(&c5, forced, &resp).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  pb::Vm vm;
  EXPECT_EQ(stub_->Pause(&c6, {}, &vm).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ApiServerTest, WatchEventsStreamsStateChangesUntilTheVmStops) {
  grpc::ClientContext ctx;
  auto reader = stub_->WatchEvents(&ctx, {});
  // Wait until the server has registered the watcher before changing state.
  for (int i = 0; i < 100; ++i) {
    grpc::ClientContext c;
    pb::Vm vm;
    ASSERT_TRUE(stub_->GetVm(&c, {}, &vm).ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  grpc::ClientContext c1, c2;
  pb::Vm vm;
  ASSERT_TRUE(stub_->Pause(&c1, {}, &vm).ok());
  pb::ShutdownRequest forced;
  forced.set_mode(pb::ShutdownRequest::MODE_FORCED);
  pb::ShutdownResponse resp;
  ASSERT_TRUE(stub_->Shutdown(&c2, forced, &resp).ok());
  std::vector<pb::VmState> states;
  pb::Event e;
  while (reader->Read(&e)) {
    if (e.has_state_changed()) states.push_back(e.state_changed().new_state());
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_THAT(states, ::testing::ElementsAre(pb::VM_STATE_PAUSED, pb::VM_STATE_STOPPING));
}

TEST_F(ApiServerTest, HealthAndReflectionAnswer) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext c1;
  grpc::health::v1::HealthCheckResponse hc;
  ASSERT_TRUE(health->Check(&c1, {}, &hc).ok());
  EXPECT_EQ(hc.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  // Reflection (v1alpha) through a generic stub: gRPC's own reflection library already registers
  // the reflection messages, so the test speaks the wire format: request field 7 (list_services),
  // response field 6 (list_services_response) of field 1 (service) of field 1 (name).
  grpc::GenericStub generic(channel_);
  grpc::ClientContext c2;
  grpc::CompletionQueue cq;
  auto call = generic.PrepareCall(
      &c2, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  const std::string request = "\x3a\x01*";  // list_services: "*"
  grpc::Slice slice(request);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(3));
  ASSERT_TRUE(cq.Next(&tag, &ok) && ok);
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(in.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  std::vector<std::string> names;
  auto fields = [](const std::string& msg, uint32_t want, std::vector<std::string>* found) {
    google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(msg.data()),
                                              static_cast<int>(msg.size()));
    while (uint32_t t = in.ReadTag()) {
      std::string value;
      if ((t & 7) != 2) return;  // Only length-delimited fields are expected here.
      uint32_t len;
      if (!in.ReadVarint32(&len) || !in.ReadString(&value, static_cast<int>(len))) return;
      if ((t >> 3) == want) found->push_back(value);
    }
  };
  std::vector<std::string> lists, services;
  fields(bytes, 6, &lists);
  ASSERT_EQ(lists.size(), 1u);
  fields(lists[0], 1, &services);
  for (const std::string& service : services) fields(service, 1, &names);
  EXPECT_THAT(names, ::testing::Contains("vmmkit.vmm.v1.VmService"));
  c2.TryCancel();
  call->Finish(nullptr, reinterpret_cast<void*>(4));
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(ApiServerTest, HealthKnowsTheServerAndVmServiceAndNothingElse) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("vmmkit.vmm.v1.VmService");
  grpc::ClientContext c1;
  grpc::health::v1::HealthCheckResponse hc;
  ASSERT_TRUE(health->Check(&c1, req, &hc).ok());
  EXPECT_EQ(hc.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  req.set_service("vmmkit.vmm.v1.NoSuchService");
  grpc::ClientContext c2;
  const grpc::Status s = health->Check(&c2, req, &hc);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("vmmkit.vmm.v1.NoSuchService"));
}

TEST_F(ApiServerTest, HealthWatchSaysServingThenNotServingAsTheServerShutsDown) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  auto reader = health->Watch(&ctx, {});
  grpc::health::v1::HealthCheckResponse r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  std::thread shutdown([&] { server_->Shutdown(); });
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(reader->Read(&r));  // The stream ends with the server.
  reader->Finish();
  shutdown.join();
}

TEST_F(ApiServerTest, HealthWatchOfAnUnknownServiceSaysServiceUnknownUntilCancelled) {
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext ctx;
  grpc::health::v1::HealthCheckRequest req;
  req.set_service("nope");
  auto reader = health->Watch(&ctx, req);
  grpc::health::v1::HealthCheckResponse r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.status(), grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN);
  ctx.TryCancel();
  EXPECT_FALSE(reader->Read(&r));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(ApiServerTest, TheSocketIsForItsOwnerOnly) {
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Another user cannot connect (tests run as root, which ignores file modes: drop to nobody).
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(2);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path_.c_str(), sizeof(addr.sun_path) - 1);
    const bool refused =
        ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 && errno == EACCES;
    ::_exit(refused ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "a client as another user was not refused (EACCES)";
}

TEST_F(ApiServerTest, SocketPathRules) {
  // A live server owns the path: refused.
  EXPECT_THAT(ApiServer::StartUnix(controller_, path_),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("another server")));
  // A stale socket (nothing listening) is replaced.
  const std::string stale = TempPath("stale.sock");
  ::unlink(stale.c_str());
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, stale.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
  }
  ASSERT_OK_AND_ASSIGN(auto second, ApiServer::StartUnix(controller_, stale));
  second->Shutdown();
  struct stat st;
  EXPECT_NE(::stat(stale.c_str(), &st), 0) << "Shutdown removes the socket file";
  // Not a socket: never replaced.
  const std::string file = TempPath("not-a-socket");
  std::ofstream(file) << "precious";
  EXPECT_THAT(ApiServer::StartUnix(controller_, file),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("not a socket")));
  EXPECT_THAT(ApiServer::StartUnix(controller_, std::string(200, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

// Listening first: a client connects (and sends its request) before the server exists; the
// request is answered once the socket is served. A socket never served removes its file.
TEST(ApiSocketTest, AcceptsBeforeItIsServedAndCleansUpUnserved) {
  FakeVm vm;
  ThreadLoop loop;
  VmController controller(vm, loop);
  ASSERT_OK(loop.RunOnLoop([&] { controller.OnStarted(); }));
  const std::string path = testing::ShortTempPath("early.sock");
  ::unlink(path.c_str());
  ASSERT_OK_AND_ASSIGN(ApiSocket socket, ApiSocket::Listen(path));
  EXPECT_EQ(socket.path(), path);
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // The path is taken while the socket listens, served or not.
  EXPECT_THAT(ApiSocket::Listen(path), StatusIs(absl::StatusCode::kFailedPrecondition));
  // The kernel accepts a connection already (into the backlog).
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0)
        << std::strerror(errno);
    ::close(fd);
  }

  auto channel = grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials());
  auto stub = pb::VmService::NewStub(channel);
  pb::Vm got;
  grpc::Status status;
  std::thread client([&] {
    grpc::ClientContext ctx;
    ctx.set_wait_for_ready(true);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    status = stub->GetVm(&ctx, pb::GetVmRequest(), &got);
  });
  // The client's connection waits in the backlog until the server takes the socket.
  for (int i = 0; i < 100 && channel->GetState(false) != GRPC_CHANNEL_READY; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_OK_AND_ASSIGN(auto server, ApiServer::Serve(controller, std::move(socket)));
  client.join();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(got.state(), pb::VM_STATE_RUNNING);
  server->Shutdown();
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "Shutdown removes the socket file";

  // Never served: destroying the socket removes the file, and the path is free again.
  { ASSERT_OK_AND_ASSIGN(ApiSocket unserved, ApiSocket::Listen(path)); }
  EXPECT_NE(::stat(path.c_str(), &st), 0);
  ASSERT_OK_AND_ASSIGN(ApiSocket again, ApiSocket::Listen(path));
  // Moved from: only the new owner removes the file.
  ApiSocket moved = std::move(again);
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
}

// Only vmm's own uid and root are served: a connection from another uid is closed at accept.
TEST(ApiServerPeerTest, AnotherUidIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to connect as another uid";
  FakeVm vm;
  ThreadLoop loop;
  VmController controller(vm, loop);
  const std::string path = testing::ShortTempPath("peer.sock");
  ASSERT_OK_AND_ASSIGN(auto server, ApiServer::StartUnix(controller, path));
  // So that only the peer check stands in the way: the directory searchable, the socket writable.
  ASSERT_EQ(::chmod(path.substr(0, path.rfind('/')).c_str(), 0711), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  // A child as uid 65534 connects (the kernel lets it) and reads: the server closes the
  // connection without a byte.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) _exit(10);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size());
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) _exit(11);
    // An HTTP/2 client preface: a served peer would get the server's SETTINGS back.
    const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    (void)!::send(fd, preface, sizeof(preface) - 1, MSG_NOSIGNAL);  // Closed already: EPIPE.
    char byte;
    _exit(::read(fd, &byte, 1) <= 0 ? 0 : 12);  // EOF, or ECONNRESET for the unread preface.
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10/11: setup failed; 12: the server answered";
  EXPECT_EQ(server->refused_peers(), 1u);
  // Root (this process) is still served.
  auto stub = pb::VmService::NewStub(
      grpc::CreateChannel("unix:" + path, grpc::InsecureChannelCredentials()));
  grpc::ClientContext c;
  pb::Vm out;
  ASSERT_TRUE(stub->GetVm(&c, {}, &out).ok());
  EXPECT_EQ(out.state(), pb::VM_STATE_CREATED);
}

TEST(ToGrpcStatusTest, KeepsCodeAndMessage) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  const grpc::Status s = ToGrpcStatus(absl::NotFoundError("no device \"x\""));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "no device \"x\"");
  EXPECT_EQ(ToGrpcStatus(absl::ResourceExhaustedError("")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
}

}  // namespace
}  // namespace vmmkit::vmm
