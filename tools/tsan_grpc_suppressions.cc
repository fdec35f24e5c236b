// TSan suppressions for tests that run gRPC servers and clients. Debian's gRPC is not built with
// TSan: the completion queues and locks that order gRPC's work live in the uninstrumented
// libgrpc/libgrpc++, but the inline templates of grpcpp's headers (CallOpSet and friends) are
// compiled, instrumented, into our generated-code libraries. TSan then sees their accesses without
// the synchronization around them and reports races that are not there. Only those gRPC-internal
// frames are suppressed; a race in vmmkit code is still reported.
// Defined in every test binary it is compiled into (not a library: TSan looks in the executable).
extern "C" const char* __tsan_default_suppressions() {
  return "race:grpc::internal::CallOpSet\n"
         "race:grpc::internal::CallbackWithSuccessTag\n"
         "race:grpc::internal::CallbackUnaryHandler\n";
}
