#include "vmm/api_server_settings.h"

#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"

namespace vmmkit::vmm {

void ApplyApiServerSettings(grpc::ServerBuilder& builder) {
  grpc::EnableDefaultHealthCheckService(false);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  builder.SetMaxReceiveMessageSize(kApiMaxRequestBytes);
  // The builder takes its own reference to the quota.
  grpc::ResourceQuota quota("vmm-api");
  quota.SetMaxThreads(kApiMaxThreads);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kApiMaxConcurrentStreams);
}

}  // namespace vmmkit::vmm
