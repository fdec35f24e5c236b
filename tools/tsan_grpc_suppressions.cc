// TSan suppressions for tests that run gRPC servers and clients. Debian's gRPC is not built with
// TSan: the completion queues and locks that order gRPC's work live in the uninstrumented
// libgrpc/libgrpc++, but the inline templates of grpcpp's headers (CallOpSet and friends) are
// compiled, instrumented, into our generated-code libraries. TSan then sees their accesses without
// the synchronization around them and reports races that are not there. The same holds for the
// libc calls those libraries make (close, epoll_wait and memmove on memory and fds they guard with
// their own locks): `called_from_lib` turns off TSan's interceptors for calls from the
// uninstrumented gRPC and Abseil libraries only. A race in vmmkit code is still reported.
// Defined in every test binary it is compiled into (not a library: TSan looks in the executable).
extern "C" const char* __tsan_default_suppressions() {
  return "race:grpc::internal::CallOpSet\n"
         "race:grpc::internal::CallbackWithSuccessTag\n"
         "race:grpc::internal::CallbackUnaryHandler\n"
         // Each pattern must name exactly one library.
         "called_from_lib:/libgrpc.so\n"
         "called_from_lib:/libgrpc++.so\n"
         "called_from_lib:/libgpr.so\n"
         "called_from_lib:/libabsl_graphcycles_internal.so\n"
         "called_from_lib:/libabsl_synchronization.so\n";
}
