// vsock_ping: a host program and a guest program in one, talking over AF_VSOCK (static, so that
// it runs in L1's and L2's initramfs alike). One side listens and echoes, the other connects,
// sends numbered messages, checks each echo and prints the round trips' percentiles.
//
//   vsock_ping listen PORT COUNT        accept one connection, echo COUNT messages, exit 0
//   vsock_ping connect CID PORT COUNT   COUNT round trips of 64 bytes; exit 0 if all came back
//                                       intact; prints "vsock: COUNT round trips to CID:PORT,
//                                       p50 N us, p99 N us"
// Connecting retries for up to 30 s (the other side may not listen yet).
#include <linux/vm_sockets.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr size_t kMessage = 64;

bool Full(int fd, uint8_t* buf, size_t n, bool write) {
  while (n > 0) {
    const ssize_t r = write ? ::write(fd, buf, n) : ::read(fd, buf, n);
    if (r <= 0) return false;
    buf += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

uint64_t NowNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000000000 + static_cast<uint64_t>(t.tv_nsec);
}

int Listen(unsigned port, long count) {
  const int s = ::socket(AF_VSOCK, SOCK_STREAM, 0);
  sockaddr_vm addr = {};
  addr.svm_family = AF_VSOCK;
  addr.svm_cid = VMADDR_CID_ANY;
  addr.svm_port = port;
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(s, 1) != 0) {
    std::perror("vsock_ping: listen");
    return 1;
  }
  const int c = ::accept(s, nullptr, nullptr);
  if (c < 0) {
    std::perror("vsock_ping: accept");
    return 1;
  }
  uint8_t buf[kMessage];
  for (long i = 0; i < count; ++i) {
    if (!Full(c, buf, kMessage, false) || !Full(c, buf, kMessage, true)) {
      std::fprintf(stderr, "vsock_ping: echo %ld failed\n", i);
      return 1;
    }
  }
  ::close(c);
  return 0;
}

int Connect(unsigned cid, unsigned port, long count) {
  int s = -1;
  for (int attempt = 0; attempt < 300; ++attempt) {
    s = ::socket(AF_VSOCK, SOCK_STREAM, 0);
    sockaddr_vm addr = {};
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = cid;
    addr.svm_port = port;
    if (s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) break;
    if (s >= 0) ::close(s);
    s = -1;
    ::usleep(100000);
  }
  if (s < 0) {
    std::perror("vsock_ping: connect");
    return 1;
  }
  std::vector<uint64_t> rtt;
  uint8_t out[kMessage], in[kMessage];
  for (long i = 0; i < count; ++i) {
    for (size_t b = 0; b < kMessage; ++b)
      out[b] = static_cast<uint8_t>(i * 31 + static_cast<long>(b));
    const uint64_t t0 = NowNs();
    if (!Full(s, out, kMessage, true) || !Full(s, in, kMessage, false)) {
      std::fprintf(stderr, "vsock_ping: round trip %ld failed\n", i);
      return 1;
    }
    rtt.push_back(NowNs() - t0);
    if (std::memcmp(in, out, kMessage) != 0) {
      std::fprintf(stderr, "vsock_ping: round trip %ld came back changed\n", i);
      return 1;
    }
  }
  std::sort(rtt.begin(), rtt.end());
  std::printf("vsock: %ld round trips to %u:%u, p50 %llu us, p99 %llu us\n", count, cid, port,
              static_cast<unsigned long long>(rtt[rtt.size() / 2] / 1000),
              static_cast<unsigned long long>(rtt[rtt.size() * 99 / 100] / 1000));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "listen") == 0) {
    return Listen(static_cast<unsigned>(std::atoi(argv[2])), std::atol(argv[3]));
  }
  if (argc == 5 && std::strcmp(argv[1], "connect") == 0) {
    return Connect(static_cast<unsigned>(std::atol(argv[2])),
                   static_cast<unsigned>(std::atoi(argv[3])), std::max(1L, std::atol(argv[4])));
  }
  std::fprintf(stderr, "usage: vsock_ping listen PORT COUNT | connect CID PORT COUNT\n");
  return 2;
}
