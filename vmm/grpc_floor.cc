// grpc_floor: vmm's API server with nothing of vmm behind it. gRPC built and linked as a release
// vmm has it (vmm/api_server_settings.h, the same archives, 1 MiB thread stacks) and reached as
// vmm's is: the program listens on a Unix socket first, then starts the server, and a thread of
// its own hands each accepted connection to it; no service is registered. It runs until SIGTERM
// or SIGINT. What it costs is the floor under vmm's own footprint and API start:
// //tests/lab:boot_benchmark measures its RSS next to vmm's, //tests/vmm:api_start_benchmark its
// CPU time to accept (docs/boot.md).
//
//   grpc_floor /tmp/floor.sock
//
// Exit status: 0 after a signal, 1 if it could not listen or start, 2 for bad arguments.
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "base/thread_start.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/server_posix.h"
#include "vmm/api_server_settings.h"

int main(int argc, char** argv) {
  if (argc != 2 || std::strlen(argv[1]) >= sizeof(sockaddr_un::sun_path)) {
    std::fprintf(stderr, "usage: grpc_floor SOCKET_PATH\n");
    return 2;
  }
  // As vmm's main does, before any thread exists.
  if (absl::Status s = vmmkit::SetDefaultThreadStackSize(size_t{1} << 20); !s.ok()) {
    std::fprintf(stderr, "grpc_floor: %s\n", s.ToString().c_str());
    return 1;
  }
  // Blocked before any thread starts, so that only sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, argv[1]);
  if (listener < 0 || ::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listener, SOMAXCONN) != 0) {
    std::fprintf(stderr, "grpc_floor: listen on %s: %s\n", argv[1], std::strerror(errno));
    return 1;
  }
  grpc::ServerBuilder builder;
  vmmkit::vmm::ApplyApiServerSettings(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr) {
    ::unlink(argv[1]);
    std::fprintf(stderr, "grpc_floor: gRPC did not start\n");
    return 1;
  }
  // Ends when the listener is shut down (accept fails with EINVAL).
  std::thread acceptor([&] {
    while (true) {
      const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (conn >= 0) {
        grpc::AddInsecureChannelFromFd(server.get(), conn);
      } else if (errno != EINTR && errno != ECONNABORTED) {
        return;
      }
    }
  });
  int signal = 0;
  sigwait(&stop, &signal);
  ::shutdown(listener, SHUT_RDWR);
  acceptor.join();
  server->Shutdown();
  ::close(listener);
  ::unlink(argv[1]);
  return 0;
}
