// ping_pong: a host program and a guest program in one, talking over AF_VSOCK or TCP (static, so
// that it runs in L1's and L2's initramfs alike). One side listens and echoes, the other connects,
// sends numbered messages, checks each echo and prints the round trips' percentiles.
//
//   ping_pong listen vsock|tcp PORT COUNT   accept a connection and echo COUNT messages, exit 0;
//                                           COUNT 0: accept connections one after another and
//                                           echo each until its peer closes, forever
//   ping_pong connect PEER PORT COUNT       COUNT round trips of 64 bytes to PEER (vsock:CID or
//                                           an IPv4 address); exit 0 if all came back intact;
//                                           prints "ping_pong: COUNT round trips to PEER:PORT,
//                                           p50 N us, p99 N us"
// Connecting retries for up to 30 s (the other side may not listen yet). TCP runs with
// TCP_NODELAY: every message is a segment of its own.
#include <arpa/inet.h>
#include <linux/vm_sockets.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
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

// An address of either family, with the socket call's length.
struct Address {
  sockaddr_storage storage = {};
  socklen_t length = 0;
  int family() const { return storage.ss_family; }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// "vsock:CID", "vsock" (any CID), an IPv4 address, or "tcp" (any address); false if none.
bool Parse(const std::string& peer, unsigned port, Address* out) {
  if (peer.rfind("vsock", 0) == 0) {
    auto* vm = reinterpret_cast<sockaddr_vm*>(&out->storage);
    vm->svm_family = AF_VSOCK;
    vm->svm_port = port;
    vm->svm_cid =
        peer == "vsock" ? VMADDR_CID_ANY : static_cast<unsigned>(std::atol(peer.c_str() + 6));
    out->length = sizeof(sockaddr_vm);
    return peer == "vsock" || peer.rfind("vsock:", 0) == 0;
  }
  auto* in = reinterpret_cast<sockaddr_in*>(&out->storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(static_cast<uint16_t>(port));
  in->sin_addr.s_addr = htonl(INADDR_ANY);
  out->length = sizeof(sockaddr_in);
  return peer == "tcp" || ::inet_pton(AF_INET, peer.c_str(), &in->sin_addr) == 1;
}

void NoDelay(int fd, const Address& address) {
  const int one = 1;
  if (address.family() == AF_INET) ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Echoes COUNT messages (COUNT 0: until the peer closes); false if one failed.
bool Echo(int c, long count) {
  uint8_t buf[kMessage];
  for (long i = 0; count == 0 || i < count; ++i) {
    if (!Full(c, buf, kMessage, false)) return count == 0;
    if (!Full(c, buf, kMessage, true)) {
      std::fprintf(stderr, "ping_pong: echo %ld failed\n", i);
      return false;
    }
  }
  return true;
}

int Listen(const Address& address, long count) {
  const int s = ::socket(address.family(), SOCK_STREAM, 0);
  const int one = 1;
  if (address.family() == AF_INET) ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (s < 0 || ::bind(s, address.get(), address.length) != 0 || ::listen(s, 1) != 0) {
    std::perror("ping_pong: listen");
    return 1;
  }
  do {
    const int c = ::accept(s, nullptr, nullptr);
    if (c < 0) {
      std::perror("ping_pong: accept");
      return 1;
    }
    NoDelay(c, address);
    const bool ok = Echo(c, count);
    ::close(c);
    if (!ok) return 1;
  } while (count == 0);
  return 0;
}

int Connect(const Address& address, const char* peer, unsigned port, long count) {
  int s = -1;
  for (int attempt = 0; attempt < 300; ++attempt) {
    s = ::socket(address.family(), SOCK_STREAM, 0);
    if (s >= 0 && ::connect(s, address.get(), address.length) == 0) break;
    if (s >= 0) ::close(s);
    s = -1;
    ::usleep(100000);
  }
  if (s < 0) {
    std::perror("ping_pong: connect");
    return 1;
  }
  NoDelay(s, address);
  std::vector<uint64_t> rtt;
  uint8_t out[kMessage], in[kMessage];
  for (long i = 0; i < count; ++i) {
    for (size_t b = 0; b < kMessage; ++b)
      out[b] = static_cast<uint8_t>(i * 31 + static_cast<long>(b));
    const uint64_t t0 = NowNs();
    if (!Full(s, out, kMessage, true) || !Full(s, in, kMessage, false)) {
      std::fprintf(stderr, "ping_pong: round trip %ld failed\n", i);
      return 1;
    }
    rtt.push_back(NowNs() - t0);
    if (std::memcmp(in, out, kMessage) != 0) {
      std::fprintf(stderr, "ping_pong: round trip %ld came back changed\n", i);
      return 1;
    }
  }
  std::sort(rtt.begin(), rtt.end());
  std::printf("ping_pong: %ld round trips to %s:%u, p50 %llu us, p99 %llu us\n", count, peer, port,
              static_cast<unsigned long long>(rtt[rtt.size() / 2] / 1000),
              static_cast<unsigned long long>(rtt[rtt.size() * 99 / 100] / 1000));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Address address;
  if (argc == 5 && std::strcmp(argv[1], "listen") == 0 &&
      (std::strcmp(argv[2], "vsock") == 0 || std::strcmp(argv[2], "tcp") == 0) &&
      Parse(argv[2], static_cast<unsigned>(std::atoi(argv[3])), &address)) {
    return Listen(address, std::max(0L, std::atol(argv[4])));
  }
  if (argc == 5 && std::strcmp(argv[1], "connect") == 0 &&
      Parse(argv[2], static_cast<unsigned>(std::atoi(argv[3])), &address) &&
      std::strcmp(argv[2], "vsock") != 0 && std::strcmp(argv[2], "tcp") != 0) {
    return Connect(address, argv[2], static_cast<unsigned>(std::atoi(argv[3])),
                   std::max(1L, std::atol(argv[4])));
  }
  std::fprintf(
      stderr, "usage: ping_pong listen vsock|tcp PORT COUNT | connect vsock:CID|IPV4 PORT COUNT\n");
  return 2;
}
