// edu_guest: drives QEMU's edu device (1234:11e8) from userspace the way a guest application
// would, through sysfs only: it runs inside the lab's L2 guest, where vmm passes edu through, and
// in L1 on the device directly as the peer to compare with. Static, so it runs in any initramfs.
//
//   edu_guest probe        find the device, enable it (memory decode, bus mastering), mmap BAR0
//                          through sysfs, check the ID register and the liveness register
//   edu_guest dma N        N DMA roundtrips RAM -> edu -> RAM into buffers whose physical
//                          addresses come from /proc/self/pagemap; data verified; prints the rate
//   edu_guest mmio N       N reads of BAR0's ID register; prints the rate (the BAR's mapping)
//   edu_guest intx N       N interrupts through uio_pci_generic (/dev/uioN): raise, wait, ack
//   edu_guest raise N      raise N interrupts and leave handling to a driver (edu_msi)
//   edu_guest wait-present, wait-absent
//                          return once edu is there / gone (woken by uevents)
//   edu_guest starve N     busy-loop at SCHED_FIFO 99 for N seconds: on a 1-vCPU guest with RT
//                          throttling off, the kernel's workers get no CPU (an unresponsive guest)
//   edu_guest rtc N        not edu: N update-ended interrupts of /dev/rtc0 (RTC_UIE_ON, then a
//                          read per interrupt), the platform's IRQ 8 as the guest sees it
//
// Prints "edu_guest: OK ..." lines; exits 0 on success, 1 on a failed check, 2 on bad usage.
#include <dirent.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtc.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

constexpr uint32_t kId = 0x00, kLive = 0x04, kIrqStatus = 0x24, kIrqRaise = 0x60, kIrqAck = 0x64,
                   kDmaSrc = 0x80, kDmaDst = 0x88, kDmaCount = 0x90, kDmaCmd = 0x98;
constexpr uint64_t kDevBuffer = 0x40000;
// QEMU 7.2's edu refuses a transfer that ends exactly at its 4 KiB buffer's end.
constexpr uint32_t kDmaBytes = 2048;

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "edu_guest: FAIL %s (%s)\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

std::string ReadFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return "";
  char buf[64] = {};
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  return std::string(buf, n);
}

void WriteFile(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY);
  if (fd < 0 || ::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    Fail("write " + path);
  }
  ::close(fd);
}

// The sysfs directory of edu, or "" if there is none.
std::string LookForEdu() {
  DIR* d = ::opendir("/sys/bus/pci/devices");
  if (d == nullptr) Fail("opendir /sys/bus/pci/devices");
  std::string found;
  while (dirent* e = ::readdir(d)) {
    const std::string dir = std::string("/sys/bus/pci/devices/") + e->d_name;
    if (ReadFile(dir + "/vendor").rfind("0x1234", 0) == 0 &&
        ReadFile(dir + "/device").rfind("0x11e8", 0) == 0) {
      found = dir;
      break;
    }
  }
  ::closedir(d);
  return found;
}

std::string FindEdu() {
  std::string found = LookForEdu();
  if (found.empty()) {
    errno = ENODEV;
    Fail("no edu (1234:11e8) in /sys/bus/pci/devices");
  }
  return found;
}

struct Edu {
  std::string dir;
  volatile uint8_t* bar0 = nullptr;
  uint32_t Read32(uint32_t off) const { return *reinterpret_cast<volatile uint32_t*>(bar0 + off); }
  void Write32(uint32_t off, uint32_t v) const {
    *reinterpret_cast<volatile uint32_t*>(bar0 + off) = v;
  }
  void Write64(uint32_t off, uint64_t v) const {
    *reinterpret_cast<volatile uint64_t*>(bar0 + off) = v;
  }
};

Edu Open() {
  Edu edu;
  edu.dir = FindEdu();
  // Memory decoding (pci_enable_device, unless a driver already did), then bus mastering through
  // the config file: what a userspace driver does.
  if (ReadFile(edu.dir + "/enable").rfind("0", 0) == 0) WriteFile(edu.dir + "/enable", "1");
  const int cfg = ::open((edu.dir + "/config").c_str(), O_RDWR);
  uint16_t command = 0;
  if (cfg < 0 || ::pread(cfg, &command, 2, 4) != 2) Fail("read command register");
  command |= 0x6;  // Memory space, bus master.
  if (::pwrite(cfg, &command, 2, 4) != 2) Fail("write command register");
  ::close(cfg);
  const int fd = ::open((edu.dir + "/resource0").c_str(), O_RDWR | O_SYNC);
  if (fd < 0) Fail("open " + edu.dir + "/resource0");
  void* p = ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) Fail("mmap BAR0");
  ::close(fd);
  edu.bar0 = static_cast<volatile uint8_t*>(p);
  return edu;
}

int Probe() {
  Edu edu = Open();
  const uint32_t id = edu.Read32(kId);
  edu.Write32(kLive, 0x12345678);
  const uint32_t live = edu.Read32(kLive);
  std::printf("edu_guest: %s ID %#x liveness %#x\n", edu.dir.c_str(), id, live);
  if (id != 0x010000ed) Fail("ID register is not 0x010000ed");
  if (live != ~0x12345678u) Fail("liveness register did not invert");
  std::printf("edu_guest: OK probe\n");
  return 0;
}

// A locked, touched page and its physical address.
struct Page {
  uint8_t* host;
  uint64_t phys;
};

Page PhysicalPage() {
  void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED,
                   -1, 0);
  if (p == MAP_FAILED) Fail("mmap a DMA page");
  std::memset(p, 0, 4096);
  const int fd = ::open("/proc/self/pagemap", O_RDONLY);
  uint64_t entry = 0;
  const off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(p) / 4096 * 8);
  if (fd < 0 || ::pread(fd, &entry, 8, at) != 8) Fail("read /proc/self/pagemap");
  ::close(fd);
  const uint64_t pfn = entry & ((uint64_t{1} << 55) - 1);
  if (!(entry >> 63) || pfn == 0) {
    errno = EPERM;
    Fail("pagemap gave no frame (not root?)");
  }
  return {static_cast<uint8_t*>(p), pfn * 4096};
}

bool RunDma(const Edu& edu, uint64_t src, uint64_t dst, bool to_ram) {
  edu.Write64(kDmaSrc, src);
  edu.Write64(kDmaDst, dst);
  edu.Write64(kDmaCount, kDmaBytes);
  edu.Write64(kDmaCmd, to_ram ? 3 : 1);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (edu.Read32(kDmaCmd) & 1) {
    if (std::chrono::steady_clock::now() > deadline) return false;
  }
  return true;
}

int Dma(long n) {
  Edu edu = Open();
  Page src = PhysicalPage(), dst = PhysicalPage();
  // edu masks DMA addresses (28 bits by default; the lab sets dma_mask=0xffffffff).
  if (src.phys >= (uint64_t{1} << 32) || dst.phys >= (uint64_t{1} << 32)) {
    errno = ERANGE;
    Fail("DMA buffers above 4 GiB (beyond edu's DMA mask)");
  }
  std::printf("edu_guest: DMA buffers at guest-physical %#llx and %#llx\n",
              static_cast<unsigned long long>(src.phys), static_cast<unsigned long long>(dst.phys));
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    for (uint32_t b = 0; b < kDmaBytes; ++b) src.host[b] = static_cast<uint8_t>(b * 7 + i);
    std::memset(dst.host, 0, kDmaBytes);
    if (!RunDma(edu, src.phys, kDevBuffer, false) || !RunDma(edu, kDevBuffer, dst.phys, true)) {
      errno = ETIMEDOUT;
      Fail("DMA roundtrip " + std::to_string(i) + " did not complete");
    }
    if (std::memcmp(src.host, dst.host, kDmaBytes) != 0) {
      errno = EIO;
      Fail("DMA roundtrip " + std::to_string(i) + ": data differs");
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "edu_guest: OK dma %ld roundtrips of %u bytes verified in %.3f s: %.0f roundtrips/s\n", n,
      kDmaBytes, s, static_cast<double>(n) / s);
  return 0;
}

int Mmio(long n) {
  Edu edu = Open();
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    if (edu.Read32(kId) != 0x010000ed) {
      errno = EIO;
      Fail("ID register read " + std::to_string(i) + " is wrong");
    }
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("edu_guest: OK mmio %ld BAR0 reads in %.3f s: %.0f reads/s\n", n, s,
              static_cast<double>(n) / s);
  return 0;
}

// uio_pci_generic's handler masks INTx (the command register's INTx-disable bit) and wakes the
// reader; the application unmasks it again through config space once it has served the device.
void SetIntxDisable(const Edu& edu, bool disable) {
  const int cfg = ::open((edu.dir + "/config").c_str(), O_RDWR);
  uint16_t command = 0;
  if (cfg < 0 || ::pread(cfg, &command, 2, 4) != 2) Fail("read command register");
  command = static_cast<uint16_t>(disable ? command | 0x400 : command & ~0x400);
  if (::pwrite(cfg, &command, 2, 4) != 2) Fail("write command register");
  ::close(cfg);
}

int Intx(long n) {
  Edu edu = Open();
  std::string uio;
  DIR* d = ::opendir((edu.dir + "/uio").c_str());
  if (d == nullptr) Fail(edu.dir + "/uio (is edu bound to uio_pci_generic?)");
  while (dirent* e = ::readdir(d)) {
    if (std::strncmp(e->d_name, "uio", 3) == 0) uio = std::string("/dev/") + e->d_name;
  }
  ::closedir(d);
  const int fd = ::open(uio.c_str(), O_RDONLY);
  if (fd < 0) Fail("open " + uio);
  uint32_t count = 0;
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    SetIntxDisable(edu, false);
    edu.Write32(kIrqRaise, 1);
    pollfd pfd{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&pfd, 1, 3000) != 1) {
      errno = ETIMEDOUT;
      Fail("INTx " + std::to_string(i) + " did not arrive on " + uio);
    }
    if (::read(fd, &count, 4) != 4) Fail("read " + uio);
    if (edu.Read32(kIrqStatus) != 1) {
      errno = EIO;
      Fail("interrupt status is not the raised value");
    }
    edu.Write32(kIrqAck, 1);
  }
  SetIntxDisable(edu, false);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("edu_guest: OK intx %ld interrupts through %s (uio count %u) in %.3f s: %.0f/s\n", n,
              uio.c_str(), count, s, static_cast<double>(n) / s);
  return 0;
}

int Raise(long n) {
  Edu edu = Open();
  for (long i = 0; i < n; ++i) {
    edu.Write32(kIrqRaise, 1);
    ::usleep(20000);  // The driver acknowledges each one.
  }
  std::printf("edu_guest: OK raised %ld interrupts\n", n);
  return 0;
}

int Starve(long seconds) {
  sched_param p{};
  p.sched_priority = 99;
  if (::sched_setscheduler(0, SCHED_FIFO, &p) != 0) Fail("sched_setscheduler(SCHED_FIFO, 99)");
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
  }
  std::printf("edu_guest: OK starved the kernel for %ld s\n", seconds);
  return 0;
}

// Waits, in this one process, until edu is there (or gone), woken by the kernel's uevents (a PCI
// device coming or going sends them) rather than by a timer: the benchmark's guest sits idle as a
// real one would, where polling sysfs every 20 ms kept its vCPU busy enough to take L1's CPU from
// the VMM being measured. A remove event comes before the device leaves sysfs, so after any event
// it looks again every 20 ms for a second; with no netlink socket, it polls every 20 ms.
int Wait(bool present) {
  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
  sockaddr_nl addr{};
  addr.nl_family = AF_NETLINK;
  addr.nl_groups = 1;  // The kernel's own uevents.
  const bool events = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  int recheck = 0;  // Looks left at 20 ms after an event.
  while (LookForEdu().empty() == present) {
    if (!events || recheck > 0) {
      ::usleep(20000);
      if (recheck > 0) --recheck;
      continue;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, -1) <= 0) continue;
    char buffer[8192];
    while (::recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT) > 0) {
    }
    recheck = 50;
  }
  if (fd >= 0) ::close(fd);
  return 0;
}

int Rtc(long n) {
  const int fd = ::open("/dev/rtc0", O_RDONLY);
  if (fd < 0) Fail("open /dev/rtc0");
  if (::ioctl(fd, RTC_UIE_ON, 0) != 0) Fail("RTC_UIE_ON");
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 3000) != 1) {
      errno = ETIMEDOUT;
      Fail("RTC update interrupt " + std::to_string(i) + " did not arrive");
    }
    unsigned long data = 0;
    if (::read(fd, &data, sizeof(data)) != sizeof(data)) Fail("read /dev/rtc0");
  }
  (void)::ioctl(fd, RTC_UIE_OFF, 0);
  ::close(fd);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("edu_guest: OK rtc %ld update interrupts in %.2f s\n", n, s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string cmd = argc >= 2 ? argv[1] : "";
  const long n = argc >= 3 ? std::strtol(argv[2], nullptr, 10) : 1;
  if (n <= 0) {
    std::fprintf(stderr, "edu_guest: N must be positive\n");
    return 2;
  }
  if (cmd == "probe") return Probe();
  if (cmd == "dma") return Dma(n);
  if (cmd == "mmio") return Mmio(n);
  if (cmd == "intx") return Intx(n);
  if (cmd == "raise") return Raise(n);
  if (cmd == "starve") return Starve(n);
  if (cmd == "rtc") return Rtc(n);
  if (cmd == "wait-present") return Wait(true);
  if (cmd == "wait-absent") return Wait(false);
  std::fprintf(stderr,
               "usage: edu_guest probe | dma N | mmio N | intx N | raise N | starve N | "
               "wait-present | wait-absent | rtc N\n");
  return 2;
}
