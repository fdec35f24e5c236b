// outb PORT VALUE: writes one byte to an x86 I/O port (ports and values in decimal or 0x hex).
// Lab machines use it where a shell cannot reach a port: the cloud kernel has no /dev/port. L1's
// init hands its verdict to QEMU's isa-debug-exit with it; L2 guests ping the VMM's boot timer.
#include <sys/io.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: outb PORT VALUE\n");
    return 2;
  }
  char* end = nullptr;
  const unsigned long port = std::strtoul(argv[1], &end, 0);
  if (*end != '\0' || port > 0xffff) {
    std::fprintf(stderr, "outb: bad port %s\n", argv[1]);
    return 2;
  }
  const unsigned long value = std::strtoul(argv[2], &end, 0);
  if (*end != '\0' || value > 0xff) {
    std::fprintf(stderr, "outb: bad value %s\n", argv[2]);
    return 2;
  }
  if (ioperm(port, 1, 1) != 0) {
    std::fprintf(stderr, "outb: ioperm(%#lx): %s\n", port, std::strerror(errno));
    return 1;
  }
  outb(static_cast<unsigned char>(value), static_cast<unsigned short>(port));
  return 0;
}
