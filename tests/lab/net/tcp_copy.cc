// tcp_copy: a file over one TCP connection, both ends in one static program (for L1's and L2's
// initramfs alike). Writes go out 256 KiB at a time, so the sender's TCP sees large writes (busybox
// nc's small ones make a guest send one small frame per write); the receiver ends at the sender's
// end of stream and reports how long the copy took from its first byte.
//
//   tcp_copy receive PORT FILE       accept one connection, write what arrives to FILE, exit 0 at
//                                    its end; prints "tcp_copy: N bytes in N ms"
//   tcp_copy send ADDRESS PORT FILE  connect (retrying for up to 30 s), send FILE, close; exit 0 if
//                                    it all went
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr size_t kChunk = 256 << 10;

uint64_t NowMs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<uint64_t>(t.tv_sec) * 1000 + static_cast<uint64_t>(t.tv_nsec) / 1000000;
}

bool WriteAll(int fd, const uint8_t* buf, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, buf, n);
    if (w <= 0) return false;
    buf += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

int Receive(unsigned port, const char* path) {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (s < 0 || ::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(s, 1) != 0) {
    std::perror("tcp_copy: listen");
    return 1;
  }
  const int c = ::accept(s, nullptr, nullptr);
  const int out = ::open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (c < 0 || out < 0) {
    std::perror("tcp_copy: accept or open");
    return 1;
  }
  std::vector<uint8_t> buf(kChunk);
  uint64_t total = 0, start = 0;
  while (true) {
    const ssize_t r = ::read(c, buf.data(), buf.size());
    if (r < 0) {
      std::perror("tcp_copy: read");
      return 1;
    }
    if (r == 0) break;
    if (total == 0) start = NowMs();
    total += static_cast<uint64_t>(r);
    if (!WriteAll(out, buf.data(), static_cast<size_t>(r))) {
      std::perror("tcp_copy: write");
      return 1;
    }
  }
  std::printf("tcp_copy: %llu bytes in %llu ms\n", static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(total == 0 ? 0 : NowMs() - start));
  return ::close(out) == 0 ? 0 : 1;
}

int Send(const char* address, unsigned port, const char* path) {
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, address, &addr.sin_addr) != 1) {
    std::fprintf(stderr, "tcp_copy: not an IPv4 address: %s\n", address);
    return 2;
  }
  const int in = ::open(path, O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    std::perror("tcp_copy: open");
    return 1;
  }
  int s = -1;
  for (int attempt = 0; attempt < 300; ++attempt) {
    s = ::socket(AF_INET, SOCK_STREAM, 0);
    if (s >= 0 && ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) break;
    if (s >= 0) ::close(s);
    s = -1;
    ::usleep(100000);
  }
  if (s < 0) {
    std::perror("tcp_copy: connect");
    return 1;
  }
  std::vector<uint8_t> buf(kChunk);
  while (true) {
    const ssize_t r = ::read(in, buf.data(), buf.size());
    if (r < 0) {
      std::perror("tcp_copy: read");
      return 1;
    }
    if (r == 0) break;
    if (!WriteAll(s, buf.data(), static_cast<size_t>(r))) {
      std::perror("tcp_copy: send");
      return 1;
    }
  }
  return ::close(s) == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "receive") == 0) {
    return Receive(static_cast<unsigned>(std::atoi(argv[2])), argv[3]);
  }
  if (argc == 5 && std::strcmp(argv[1], "send") == 0) {
    return Send(argv[2], static_cast<unsigned>(std::atoi(argv[3])), argv[4]);
  }
  std::fprintf(stderr, "usage: tcp_copy receive PORT FILE | send ADDRESS PORT FILE\n");
  return 2;
}
