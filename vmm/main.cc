// vmm: a minimal x86-64 virtual machine monitor built from vmmkit's libraries. It boots a Linux
// kernel (bzImage or ELF vmlinux) or a Multiboot kernel with an optional initrd (a Multiboot
// module), a serial console and ACPI.
//
//   vmm --kernel=vmlinuz --initrd=initrd.cpio --cmdline="console=ttyS0" --memory=512 --cpus=2
//
// Exit status: 0 when the guest reboots or powers off or on SIGINT/SIGTERM, 1 on a VMM or KVM
// failure, 2 for a bad flag or input file (nothing has started), 3 on a guest triple fault, and
// (V << 1) | 1 (modulo 256) when the guest writes V to the debug-exit port (--debug_exit).
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "absl/base/config.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/thread_start.h"
#include "vmm/api_server.h"
#include "vmm/config.h"
#include "vmm/confinement.h"
#include "vmm/vmm.h"

ABSL_FLAG(std::string, kernel, "",
          "Kernel (required): a Linux bzImage or ELF vmlinux, or a Multiboot kernel (an ELF32, "
          "or an image whose Multiboot header gives its load addresses).");
ABSL_FLAG(std::string, kernel_entry, "as-is",
          "How a Linux kernel is entered: as-is (a bzImage through its own decompressor, in the "
          "guest; an ELF vmlinux through its 64-bit entry), 64bit (vmm decompresses a bzImage's "
          "kernel on the host and enters its 64-bit entry: no decompressor in the guest) or pvh "
          "(the same, or an ELF vmlinux, entered through its PVH entry; needs CONFIG_PVH). "
          "Multiboot kernels always enter through Multiboot.");
ABSL_FLAG(std::string, initrd, "",
          "Initial ramdisk (optional); a Multiboot kernel gets it as its module.");
ABSL_FLAG(std::string, cmdline, "console=ttyS0 panic=1", "Kernel command line.");
ABSL_FLAG(std::string, memory, "512", "Guest memory in MiB (64 to 1048576).");
ABSL_FLAG(std::string, memory_backing, "anonymous",
          "Guest RAM backing: anonymous (private, transparent huge pages; the fastest), memfd "
          "(shareable with other processes) or hugetlb (2 MiB pages from the hugetlb pool).");
ABSL_FLAG(bool, prefault, false,
          "Fault in (allocate and zero) all guest RAM at start: no page faults later, and a "
          "start that fails at once if the memory is not there. Worth it for VMs that will get "
          "passthrough devices, which pin all guest RAM anyway: the first one then attaches "
          "without faulting in what the guest never touched.");
ABSL_FLAG(std::string, cpus, "1", "Number of vCPUs (1 to 254).");
ABSL_FLAG(std::string, serial, "stdio",
          "Guest console (COM1): stdio (interactive), file:PATH, or none.");
ABSL_FLAG(bool, iommu, false,
          "Give the guest an Intel VT-d IOMMU (DMA remapping in caching mode, described by an "
          "ACPI DMAR table) in front of every PCI function: a passed-through device then reaches "
          "only what the guest maps for it, as a DPDK or SPDK program in the guest, or nested "
          "VFIO, needs. Off by default: it makes every guest DMA map and unmap a VM exit.");
ABSL_FLAG(bool, iommu_caching_mode, true,
          "With --iommu: the unit advertises caching mode, so the guest invalidates after every "
          "map and, in Linux, flushes every unmap at once; passthrough devices need it (the host "
          "IOMMU follows the guest's mappings). Turned off, the guest batches its unmaps and "
          "says nothing of its maps: virtio devices (vmm's paths and vhost's IOTLB) keep "
          "working with far fewer VM exits, and passthrough devices are refused (as QEMU's "
          "intel-iommu with caching-mode=off).");
ABSL_FLAG(std::string, irqchip, "kernel",
          "Interrupt controllers: kernel (KVM's IOAPIC, PIC and PIT) or split (KVM keeps the "
          "local APICs; vmm emulates the IOAPIC; no PIT and no PIC, so the guest times with its "
          "local APIC's TSC-deadline timer). Split is what interrupt remapping needs.");
ABSL_FLAG(bool, debug_exit, false,
          "The debug-exit port 0xf4 (QEMU's isa-debug-exit convention, used by x86 unit-test "
          "kernels): a guest's write of V (1, 2 or 4 bytes) ends vmm with exit status "
          "(V << 1) | 1, modulo 256 (V = 0 and 1 read as 1 and 3, the statuses of a VMM failure "
          "and a triple fault).");
ABSL_FLAG(bool, boot_timer, false,
          "Log the time from vmm's start until the guest writes 123 to I/O port 0x440.");
ABSL_FLAG(std::string, api_socket, "",
          "Serve the gRPC control plane (proto/vmm/v1) on this Unix socket, created with mode "
          "0600. A stale socket file is replaced; a path where a server answers is refused.");
ABSL_FLAG(std::string, vsock, "",
          "cid=N[,id=NAME]: a virtio-vsock device (the kernel's vhost-vsock) giving the guest "
          "context id N (3 to 4294967294); the host side is AF_VSOCK sockets.");
ABSL_FLAG(std::string, seccomp, "on",
          "Seccomp filters, one per thread kind (vCPU, event loop, API, IOAPIC lines): on (a "
          "syscall outside a thread's list ends vmm with a line naming it), log (allowed, and "
          "logged by the kernel: audit type=1326) or off.");
ABSL_FLAG(std::string, landlock, "on",
          "Landlock: limit vmm's file access to the files and devices it was given (skipped, "
          "with a warning, where the kernel has no Landlock): on or off.");

namespace {

// --device, --disk, --disk-dir and --net may be repeated, and their values have commas, so they are
// taken out of argv before Abseil parses the rest (an Abseil flag would keep only the last
// occurrence).
std::vector<std::string> TakeRepeatedFlag(int& argc, char** argv, absl::string_view name) {
  const std::string two = absl::StrCat("--", name), one = absl::StrCat("-", name);
  std::vector<std::string> values;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    const absl::string_view a = argv[i];
    if (a == "--") {  // Everything after it is positional: keep as is.
      while (i < argc) argv[out++] = argv[i++];
      break;
    }
    if (a == two || a == one) {
      values.push_back(i + 1 < argc ? argv[++i] : "");
    } else if (absl::StartsWith(a, two + "=") || absl::StartsWith(a, one + "=")) {
      values.emplace_back(std::string(a.substr(a.find('=') + 1)));
    } else {
      argv[out++] = argv[i];
    }
  }
  argc = out;
  return values;
}

// Milliseconds from the process's start, as the kernel records it (/proc/self/stat's starttime,
// in clock ticks since boot), to now: what exec, the dynamic loader and static initializers took
// before main. nullopt if /proc says nothing readable.
std::optional<double> MsSinceProcessStart() {
  std::ifstream stat("/proc/self/stat");
  std::string line;
  if (!std::getline(stat, line)) return std::nullopt;
  const size_t name_end = line.rfind(')');  // Field 2, the name, may hold spaces.
  if (name_end == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(name_end + 1));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i != 22) continue;
    double ticks;
    if (!absl::SimpleAtod(field, &ticks)) return std::nullopt;
    timespec now{};
    ::clock_gettime(CLOCK_BOOTTIME, &now);
    const double start_s = ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
    return (static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9 - start_s) *
           1e3;
  }
  return std::nullopt;
}

// Every thread vmm or a library in it starts (vCPUs, the event loop, gRPC's pools) gets a 1 MiB
// stack instead of RLIMIT_STACK's 8 MiB, which under transparent huge pages cost vmm 2 MiB of RSS
// per unlucky thread (base/thread_start.h; docs/boot.md). 1 MiB is far above what vmm's threads
// use (nothing recurses on guest input). Sanitized builds keep the default: their frames are
// several times larger.
absl::Status LimitThreadStacks() {
#if defined(ABSL_HAVE_ADDRESS_SANITIZER) || defined(ABSL_HAVE_THREAD_SANITIZER) || \
    defined(ABSL_HAVE_MEMORY_SANITIZER)
  return absl::OkStatus();
#else
  return vmmkit::SetDefaultThreadStackSize(size_t{1} << 20);
#endif
}

}  // namespace

int main(int argc, char** argv) {
  const absl::Time start = absl::Now();
  // A console reader that goes away (`vmm | head -1`) must not kill the VM: writes to it fail
  // with EPIPE instead, and the guest runs on without a console.
  std::signal(SIGPIPE, SIG_IGN);
  // Passed-through devices take fds (the device, its group, an eventfd per interrupt vector in
  // use): the soft limit, often 1024, is raised to the hard one.
  if (rlimit files; ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < files.rlim_max) {
    files.rlim_cur = files.rlim_max;
    (void)::setrlimit(RLIMIT_NOFILE, &files);
  }
  absl::SetProgramUsageMessage(
      "boots a Linux guest on KVM.\n"
      "  vmm --kernel=bzImage [--initrd=FILE] [--cmdline=...] [--memory=MiB] [--cpus=N]\n"
      "      [--memory_backing=memfd|anonymous|hugetlb] [--prefault]\n"
      "      [--kernel_entry=as-is|64bit|pvh]\n"
      "      [--serial=stdio|file:PATH|none] [--boot_timer] [--debug_exit] [--iommu]\n"
      "      [--irqchip=kernel|split]\n"
      "      [--api_socket=PATH] [--seccomp=on|log|off] [--landlock=on|off]\n"
      "      [--device vfio-pci,host=DDDD:BB:DD.F[,id=NAME]]...  (a host PCI function bound to\n"
      "       vfio-pci, passed through to the guest; repeatable)\n"
      "      [--disk path=FILE[,readonly=on][,id=NAME][,queues=N]]...  (a raw image as a\n"
      "       virtio-blk disk; repeatable)\n"
      "      [--disk-dir DIR]...  (where images hot-added over the API may come from)\n"
      "      [--net tap=NAME|fd=N[:N...][,mac=MAC][,id=NAME][,queues=N][,vhost=on]]...  (a host\n"
      "       tap as a virtio-net interface; repeatable)\n"
      "      [--vsock cid=N[,id=NAME]]  (a virtio-vsock device; host side: AF_VSOCK)\n"
      "Exit status: 0 guest reboot/poweroff or SIGINT/SIGTERM; 1 VMM or KVM failure;\n"
      "2 bad flag or input file; 3 guest triple fault; (V << 1) | 1 the guest wrote V to the\n"
      "debug-exit port (--debug_exit).");
  std::vector<std::string> devices = TakeRepeatedFlag(argc, argv, "device");
  std::vector<std::string> disks = TakeRepeatedFlag(argc, argv, "disk");
  std::vector<std::string> disk_dirs = TakeRepeatedFlag(argc, argv, "disk-dir");
  std::vector<std::string> nets = TakeRepeatedFlag(argc, argv, "net");
  absl::ParseCommandLine(argc, argv);
  const vmmkit::vmm::RawConfig raw{.kernel = absl::GetFlag(FLAGS_kernel),
                                   .initrd = absl::GetFlag(FLAGS_initrd),
                                   .cmdline = absl::GetFlag(FLAGS_cmdline),
                                   .memory_mib = absl::GetFlag(FLAGS_memory),
                                   .cpus = absl::GetFlag(FLAGS_cpus),
                                   .serial = absl::GetFlag(FLAGS_serial),
                                   .memory_backing = absl::GetFlag(FLAGS_memory_backing),
                                   .prefault = absl::GetFlag(FLAGS_prefault),
                                   .boot_timer = absl::GetFlag(FLAGS_boot_timer),
                                   .debug_exit = absl::GetFlag(FLAGS_debug_exit),
                                   .kernel_entry = absl::GetFlag(FLAGS_kernel_entry),
                                   .iommu = absl::GetFlag(FLAGS_iommu),
                                   .iommu_caching_mode = absl::GetFlag(FLAGS_iommu_caching_mode),
                                   .irqchip = absl::GetFlag(FLAGS_irqchip),
                                   .api_socket = absl::GetFlag(FLAGS_api_socket),
                                   .seccomp = absl::GetFlag(FLAGS_seccomp),
                                   .landlock = absl::GetFlag(FLAGS_landlock),
                                   .devices = std::move(devices),
                                   .disks = std::move(disks),
                                   .disk_dirs = std::move(disk_dirs),
                                   .nets = std::move(nets),
                                   .vsock = absl::GetFlag(FLAGS_vsock)};
  absl::StatusOr<vmmkit::vmm::VmmConfig> config = vmmkit::vmm::ValidateConfig(raw);
  if (!config.ok()) {
    std::fprintf(stderr, "vmm: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  if (config->boot_timer) {
    if (std::optional<double> ms = MsSinceProcessStart()) {
      std::fprintf(stderr, "vmm: process start to main: %.0f ms (clock ticks of %ld ms)\n",
                   *ms - absl::ToDoubleMilliseconds(absl::Now() - start),
                   1000 / ::sysconf(_SC_CLK_TCK));
    }
  }
  // The API socket listens before anything else starts, so that a client can connect as early
  // as possible (its requests wait until the server and then the event loop are up); the server
  // takes it over below. Removed again if vmm ends before serving it.
  std::optional<vmmkit::vmm::ApiSocket> api_socket;
  if (!config->api_socket.empty()) {
    absl::StatusOr<vmmkit::vmm::ApiSocket> listening =
        vmmkit::vmm::ApiSocket::Listen(config->api_socket);
    if (!listening.ok()) {
      std::fprintf(stderr, "vmm: %s\n", std::string(listening.status().message()).c_str());
      return 1;
    }
    api_socket.emplace(std::move(*listening));
  }
  if (absl::Status s = LimitThreadStacks(); !s.ok()) {
    std::fprintf(stderr, "vmm: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  // Before any thread exists: each thread confines itself as it starts (vmm/confinement.h).
  if (absl::Status s = vmmkit::vmm::SetUpConfinement(*config); !s.ok()) {
    std::fprintf(stderr, "vmm: confinement: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  // The gRPC control plane, if asked for: created here, so that the VMM library has no gRPC in it.
  vmmkit::vmm::Vmm::ApiStarter start_api;
  if (api_socket.has_value()) {
    start_api =
        [&](vmmkit::vmm::VmController& controller) -> absl::StatusOr<std::shared_ptr<void>> {
      absl::StatusOr<std::unique_ptr<vmmkit::vmm::ApiServer>> server =
          vmmkit::vmm::ApiServer::Serve(controller, std::move(*api_socket));
      if (!server.ok()) return server.status();
      return std::shared_ptr<void>(std::move(*server));
    };
  }
  absl::StatusOr<std::unique_ptr<vmmkit::vmm::Vmm>> vmm =
      vmmkit::vmm::Vmm::Create(*config, start, start_api);
  if (!vmm.ok()) {
    std::fprintf(stderr, "vmm: %s\n", std::string(vmm.status().message()).c_str());
    // A malformed kernel or initrd is bad input, like a bad flag.
    return vmm.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  return (*vmm)->Run();
}
