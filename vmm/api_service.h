// File: vmm/api_service.h
// -----------------------------------------------------------------------------
// VmServiceImpl implements proto/vmm/v1's VmService over a VmController: each RPC checks what
// only the proto can get wrong (an unspecified Shutdown mode, a negative or out-of-range
// Duration), converts its request to one controller call and the result back to a proto.
// absl::Status becomes grpc::Status in exactly one function, ToGrpcStatus. It holds no state of
// its own and needs no server: ApiServer registers it, and the proto-level fuzz target
// (api_service_fuzz) calls its methods directly.
//
//   VmServiceImpl service(controller);
//   grpc::ServerBuilder builder;
//   builder.RegisterService(&service);
//
// Thread-safety: as VmController (every method may run on any gRPC thread at once).

#ifndef VMMKIT_VMM_API_SERVICE_H_
#define VMMKIT_VMM_API_SERVICE_H_

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"
#include "proto/vmm/v1/vmm.grpc.pb.h"
#include "vmm/controller.h"

namespace vmmkit::vmm {

// The one absl::Status -> grpc::Status conversion (same code, same message).
grpc::Status ToGrpcStatus(const absl::Status& status);

class VmServiceImpl final : public v1::VmService::Service {
 public:
  // `controller` must outlive this service.
  explicit VmServiceImpl(VmController& controller) : c_(controller) {}

  grpc::Status GetVm(grpc::ServerContext*, const v1::GetVmRequest*, v1::Vm* out) override;
  grpc::Status Pause(grpc::ServerContext*, const v1::PauseRequest*, v1::Vm* out) override;
  grpc::Status Resume(grpc::ServerContext*, const v1::ResumeRequest*, v1::Vm* out) override;
  grpc::Status Shutdown(grpc::ServerContext*, const v1::ShutdownRequest* req,
                        v1::ShutdownResponse* out) override;
  grpc::Status ListDevices(grpc::ServerContext*, const v1::ListDevicesRequest*,
                           v1::ListDevicesResponse* out) override;
  grpc::Status AddDevice(grpc::ServerContext*, const v1::AddDeviceRequest* req,
                         v1::Device* out) override;
  grpc::Status RemoveDevice(grpc::ServerContext*, const v1::RemoveDeviceRequest* req,
                            v1::RemoveDeviceResponse* out) override;
  grpc::Status GetDevice(grpc::ServerContext*, const v1::GetDeviceRequest* req,
                         v1::Device* out) override;
  // Streams events until the client goes away (`ctx` is cancelled) or the stream closes.
  grpc::Status WatchEvents(grpc::ServerContext* ctx, const v1::WatchEventsRequest*,
                           grpc::ServerWriter<v1::Event>* writer) override;

 private:
  VmController& c_;
};

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_API_SERVICE_H_
