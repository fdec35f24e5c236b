// Fuzzes the control plane at the proto level: any sequence of VmService RPCs, each request
// parsed from the fuzzer's bytes in the wire format (any field values: out-of-range enums,
// negative or huge Durations, ids and hosts of any bytes, slots past 31, unknown fields), served
// by VmServiceImpl over a VmController and a fake VM whose guest releases devices at once.
// Bytes that do not parse are skipped, as gRPC refuses them before any handler runs. Checked:
// every call returns one of the codes the API specifies (never UNKNOWN or INTERNAL), an OK
// response serializes, an error message stays bounded, and a stopping VM never runs again.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tools/testing/fuzz_input.h"
#include "vmm/api_service.h"
#include "vmm/controller.h"
#include "vmm/testing/fake_vm.h"

namespace vmmkit::vmm {
namespace {

namespace pb = ::vmmkit::vmm::v1;

// A guest that releases a device as soon as it is asked (the waits a real guest makes are
// controller_fuzz's business), so that a valid RemoveDevice never waits out its timeout.
class PromptGuest : public testing::FakeVm {
 public:
  absl::StatusOr<DeviceSummary> BeginRemoveDevice(const std::string& id) override {
    absl::StatusOr<DeviceSummary> d = FakeVm::BeginRemoveDevice(id);
    if (d.ok()) {
      hotplugged.erase(id);
      controller->OnDeviceEvent({VmEvent::DeviceChanged::Type::kRemoved, *d, ""});
    }
    return d;
  }
  VmController* controller = nullptr;
};

// Errors quote client strings only in part (see VmController): a message never grows with the
// request beyond this.
constexpr size_t kMaxErrorBytes = 512;

void Check(const char* rpc, const grpc::Status& s, const google::protobuf::Message& out) {
  if (!IsSpecifiedStatus(static_cast<absl::StatusCode>(s.error_code()))) {
    std::fprintf(stderr, "api_service_fuzz: %s: unspecified status %d: %s\n", rpc,
                 static_cast<int>(s.error_code()), s.error_message().c_str());
    std::abort();
  }
  if (s.ok()) {
    std::string bytes;
    fuzzing::Require(out.SerializeToString(&bytes), "an OK response does not serialize");
  } else if (s.error_message().size() > kMaxErrorBytes) {
    std::fprintf(stderr, "api_service_fuzz: %s: a %zu-byte error message\n", rpc,
                 s.error_message().size());
    std::abort();
  }
}

// Serves one request of type Req parsed from `bytes` with `method`; false if it does not parse.
template <typename Req, typename Resp, typename Method>
bool Serve(VmServiceImpl& service, Method method, const char* rpc, const std::string& bytes) {
  Req req;
  if (!req.ParseFromString(bytes)) return false;
  Resp out;
  grpc::ServerContext ctx;
  Check(rpc, (service.*method)(&ctx, &req, &out), out);
  return true;
}

void Run(const uint8_t* data, size_t size) {
  PromptGuest vm;
  testing::InlineLoop loop;
  VmController c(vm, loop);
  vm.controller = &c;
  VmServiceImpl service(c);
  fuzzing::FuzzInput in(data, size);
  bool stopping = false, started = false;
  for (int ops = 0; !in.done() && ops < 64; ++ops) {
    const uint8_t op = in.Take<uint8_t>() % 9;
    std::string bytes(in.Take<uint8_t>(), '\0');
    for (char& b : bytes) b = static_cast<char>(in.Take<uint8_t>());
    switch (op) {
      case 0:
        Serve<pb::GetVmRequest, pb::Vm>(service, &VmServiceImpl::GetVm, "GetVm", bytes);
        break;
      case 1:
        Serve<pb::PauseRequest, pb::Vm>(service, &VmServiceImpl::Pause, "Pause", bytes);
        break;
      case 2:
        Serve<pb::ResumeRequest, pb::Vm>(service, &VmServiceImpl::Resume, "Resume", bytes);
        break;
      case 3: {
        pb::ShutdownRequest req;
        if (!req.ParseFromString(bytes)) break;
        // A graceful shutdown waits for the guest on the loop's timer, which the inline loop
        // holds: it returns at once, as with a real loop.
        pb::ShutdownResponse out;
        grpc::ServerContext ctx;
        const grpc::Status s = service.Shutdown(&ctx, &req, &out);
        Check("Shutdown", s, out);
        if (s.ok() && out.state() == pb::VM_STATE_STOPPING) stopping = true;
        break;
      }
      case 4:
        Serve<pb::ListDevicesRequest, pb::ListDevicesResponse>(service, &VmServiceImpl::ListDevices,
                                                               "ListDevices", bytes);
        break;
      case 5:
        Serve<pb::GetDeviceRequest, pb::Device>(service, &VmServiceImpl::GetDevice, "GetDevice",
                                                bytes);
        break;
      case 6:
        Serve<pb::AddDeviceRequest, pb::Device>(service, &VmServiceImpl::AddDevice, "AddDevice",
                                                bytes);
        break;
      case 7:
        Serve<pb::RemoveDeviceRequest, pb::RemoveDeviceResponse>(
            service, &VmServiceImpl::RemoveDevice, "RemoveDevice", bytes);
        break;
      default:
        // The VMM reports its vCPUs started (once, before any stop); the bytes are unused.
        // (WatchEvents streams until its client leaves, so it needs a transport: api_server_test
        // covers it. Its request has no fields to validate.)
        if (!started && !stopping) c.OnStarted();
        started = true;
        break;
    }
    if (stopping) {
      pb::Vm vm_out;
      grpc::ServerContext ctx;
      const grpc::Status s = service.GetVm(&ctx, nullptr, &vm_out);
      fuzzing::Require(!s.ok() || vm_out.state() == pb::VM_STATE_STOPPING,
                       "a stopping VM that runs again");
    }
  }
}

}  // namespace
}  // namespace vmmkit::vmm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::vmm::Run(data, size);
  return 0;
}
