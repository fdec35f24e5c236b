// File: vmm/api_server_settings.h
// -----------------------------------------------------------------------------
// The gRPC settings vmm's API server is built with, in one place: ApiServer applies them to its
// server, and //vmm:grpc_floor applies them to a server with nothing of vmm behind it, so that
// what gRPC alone costs (RSS, CPU time to accept) is measured with the same settings
// (docs/boot.md, "Footprint").
//
//   grpc::ServerBuilder builder;
//   ApplyApiServerSettings(builder);
//   builder.RegisterService(...);

#ifndef VMMKIT_VMM_API_SERVER_SETTINGS_H_
#define VMMKIT_VMM_API_SERVER_SETTINGS_H_

#include "grpcpp/grpcpp.h"

namespace vmmkit::vmm {

// A request larger than this is refused with RESOURCE_EXHAUSTED before it reaches a handler
// (the largest real one, an AddDevice with a sysfs path, is well under 1 KiB).
inline constexpr int kApiMaxRequestBytes = 64 << 10;
// Threads gRPC may use to serve calls, and calls one connection may have open at once.
inline constexpr int kApiMaxThreads = 64;
inline constexpr int kApiMaxConcurrentStreams = 32;

// Sets the limits above on `builder`. Also process-wide, for every server built afterwards: no
// default health service (vmm serves grpc.health.v1 itself) and server reflection.
void ApplyApiServerSettings(grpc::ServerBuilder& builder);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_API_SERVER_SETTINGS_H_
