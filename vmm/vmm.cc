#include "vmm/vmm.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "acpi/aml.h"
#include "acpi/tables.h"
#include "base/alongside.h"
#include "base/log.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "devices/legacy.h"
#include "kvm/cpuid.h"
#include "kvm/long_mode.h"
#include "loader/linux_loader.h"
#include "memory/address_allocator.h"
#include "vmm/layout.h"

namespace vmmkit::vmm {
namespace {

// Reads a whole file with a few large read(2)s: a kernel is megabytes, and a byte-at-a-time stream
// costs seconds in a slow (nested, emulated) machine.
absl::StatusOr<std::vector<uint8_t>> ReadFile(const std::string& path, const char* what) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  struct stat st;
  if (!fd.valid() || ::fstat(fd.get(), &st) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, "=", path, ": ", std::strerror(errno)));
  }
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::read(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, "=", path, ": read failed after ", done,
                       " bytes: ", n < 0 ? std::strerror(errno) : "early EOF"));
    }
    done += static_cast<size_t>(n);
  }
  return data;
}

// MSRs Linux expects a firmware to have initialized; values as after a reset, plus write-back
// caching by default (MTRRdefType), without which every access would be uncached.
struct BootMsr {
  uint32_t index;
  uint64_t value;
};
constexpr BootMsr kBootMsrs[] = {
    {0x174, 0},              // IA32_SYSENTER_CS
    {0x175, 0},              // IA32_SYSENTER_ESP
    {0x176, 0},              // IA32_SYSENTER_EIP
    {0xc0000081, 0},         // STAR
    {0xc0000082, 0},         // LSTAR
    {0xc0000083, 0},         // CSTAR
    {0xc0000084, 0},         // SYSCALL_MASK
    {0xc0000102, 0},         // KERNEL_GS_BASE
    {0x10, 0},               // IA32_TSC
    {0x1a0, 1},              // IA32_MISC_ENABLE: fast strings
    {0x2ff, (1 << 11) | 6},  // MTRRdefType: MTRRs enabled, default type write-back
};

void SetLapicLvt(kvm_lapic_state& lapic, size_t reg, uint32_t value) {
  std::memcpy(&lapic.regs[reg], &value, sizeof(value));
}

// Where an attach or detach spends its time, for the log: "412 ms (DMA map 90 ms, ...)".
class StepTimer {
 public:
  // "NAME W ms" and, where the step slept (the kernel waiting on a device), " (C ms CPU)".
  void Step(absl::string_view name) {
    const absl::Time now = absl::Now();
    const absl::Duration cpu = ThreadCpu();
    const int64_t wall_ms = absl::ToInt64Milliseconds(now - last_);
    const int64_t cpu_ms = absl::ToInt64Milliseconds(cpu - last_cpu_);
    steps_.push_back(
        absl::StrCat(name, " ", wall_ms, " ms",
                     wall_ms > cpu_ms + 2 ? absl::StrCat(" (", cpu_ms, " ms CPU)") : ""));
    last_ = now;
    last_cpu_ = cpu;
  }
  std::string Summary() const {
    return absl::StrCat(absl::ToInt64Milliseconds(absl::Now() - start_), " ms (",
                        absl::StrJoin(steps_, ", "), ")");
  }

 private:
  static absl::Duration ThreadCpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return absl::DurationFromTimespec(ts);
  }
  absl::Time start_ = absl::Now(), last_ = start_;
  absl::Duration last_cpu_ = ThreadCpu();
  std::vector<std::string> steps_;
};

// The host device exists and vfio-pci drives it: said plainly, before VFIO says it obscurely.
absl::Status CheckBoundToVfioPci(const std::string& bdf) {
  const std::string dev = "/sys/bus/pci/devices/" + bdf;
  struct stat st;
  if (::stat(dev.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("no PCI device ", bdf, " on the host (", dev, ")"));
  }
  char target[256] = {};
  const ssize_t n = ::readlink((dev + "/driver").c_str(), target, sizeof(target) - 1);
  const std::string driver = n > 0 ? std::string(target, static_cast<size_t>(n)) : "";
  const std::string name = driver.substr(driver.find_last_of('/') + 1);
  if (name != "vfio-pci") {
    return absl::FailedPreconditionError(absl::StrCat(
        bdf, " is bound to ", name.empty() ? "no driver" : name, ", not vfio-pci (echo ", bdf,
        " > /sys/bus/pci/drivers/vfio-pci/bind, after a new_id)"));
  }
  return absl::OkStatus();
}

std::string DescribeRegisters(kvm::Vcpu& vcpu) {
  absl::StatusOr<kvm_regs> r = vcpu.GetRegs();
  absl::StatusOr<kvm_sregs> s = vcpu.GetSregs();
  if (!r.ok() || !s.ok()) return "registers unavailable";
  return absl::StrFormat(
      "rip=%#x rsp=%#x rflags=%#x rax=%#x rbx=%#x rcx=%#x rdx=%#x rsi=%#x rdi=%#x "
      "cr0=%#x cr2=%#x cr3=%#x cr4=%#x efer=%#x cs=%#x",
      r->rip, r->rsp, r->rflags, r->rax, r->rbx, r->rcx, r->rdx, r->rsi, r->rdi, s->cr0, s->cr2,
      s->cr3, s->cr4, s->efer, s->cs.selector);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Vmm>> Vmm::Create(const VmmConfig& config, absl::Time start) {
  // SIGINT/SIGTERM go to the event loop's signalfd: blocked before the first thread starts (the
  // API server's, next), so that every thread inherits the mask and none takes the default action.
  // An inherited "ignore" (as a non-interactive shell gives background jobs for SIGINT) would
  // discard them before the signalfd sees them: the default is restored, harmless while blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  std::unique_ptr<Vmm> vmm(new Vmm(config, start));
  // The API first, so that it accepts as early as possible; requests wait for the event loop.
  RETURN_IF_ERROR(vmm->StartApi());
  RETURN_IF_ERROR(vmm->Build());
  return vmm;
}

absl::Status Vmm::StartApi() {
  ASSIGN_OR_RETURN(loop_, EventLoop::Create());
  vcpu_tids_ = std::vector<std::atomic<int64_t>>(config_.cpus);
  if (config_.api_socket.empty() && config_.api_tcp.empty()) return absl::OkStatus();
  VmOperations& ops = *this;  // A private base: converted here, inside the class.
  controller_ = std::make_unique<VmController>(ops, *loop_);
  absl::StatusOr<std::unique_ptr<ApiServer>> server =
      config_.api_socket.empty() ? ApiServer::StartTcp(*controller_, config_.api_tcp)
                                 : ApiServer::StartUnix(*controller_, config_.api_socket);
  if (!server.ok()) return server.status();
  api_server_ = std::move(server).value();
  return absl::OkStatus();
}

Vmm::~Vmm() {
  // Release RPCs waiting for the loop before the server goes; then the vCPUs; then the devices
  // they used.
  loop_->Close();
  api_server_.reset();
  StopVcpus();
  TearDownPassthrough();
  if (slots_ != nullptr) (void)system_memory_.UnregisterListener(slots_.get());
}

absl::Status Vmm::Build() {
  // Input files first: a bad image is the user's error and must be reported before KVM is touched.
  ASSIGN_OR_RETURN(std::vector<uint8_t> kernel, ReadFile(config_.kernel_path, "--kernel"));
  std::vector<uint8_t> initrd;
  if (!config_.initrd_path.empty()) {
    ASSIGN_OR_RETURN(initrd, ReadFile(config_.initrd_path, "--initrd"));
  }
  RETURN_IF_ERROR(OpenConsole());
  ASSIGN_OR_RETURN(EventFd exit_event, EventFd::Create());
  exit_event_ = std::make_unique<EventFd>(std::move(exit_event));

  ASSIGN_OR_RETURN(GuestMemory memory, GuestMemory::CreateRam(RamRegions(config_.memory_bytes),
                                                              {.backing = config_.memory_backing,
                                                               .name = "vmm-guest-ram",
                                                               .prefault = config_.prefault}));
  memory_ = std::make_unique<GuestMemory>(std::move(memory));

  ASSIGN_OR_RETURN(kvm::Kvm kvm, kvm::Kvm::Open());
  kvm_ = std::make_unique<kvm::Kvm>(std::move(kvm));
  ASSIGN_OR_RETURN(vm_, kvm_->CreateVm());
  RETURN_IF_ERROR(vm_->SetTssAddress(kTssAddress));
  RETURN_IF_ERROR(vm_->SetIdentityMapAddress(kIdentityMapAddress));
  RETURN_IF_ERROR(vm_->CreateIrqchip());
  RETURN_IF_ERROR(vm_->CreatePit2(KVM_PIT_SPEAKER_DUMMY));

  slots_ = std::make_unique<kvm::KvmMemorySlots>(vm_.get());
  RETURN_IF_ERROR(system_memory_.RegisterListener(slots_.get()));
  for (size_t i = 0; i < memory_->regions().size(); ++i) {
    RETURN_IF_ERROR(system_memory_.AddRam(absl::StrCat("ram", i), memory_->regions()[i]));
  }

  // ACPI first: the loader passes the RSDP's address in the zero page.
  acpi::AcpiTables tables{
      .dsdt_body = BuildDsdt(),
      .fadt = {.reset_register = acpi::SystemIoByte(kPortI8042 + 4),
               .reset_value = 0xfe,
               .sleep_control = acpi::SystemIoByte(kPortAcpiSleep),
               .sleep_status = acpi::SystemIoByte(kPortAcpiSleep + 1),
               .iapc_boot_arch = acpi::kIapc8042 | acpi::kIapcVgaNotPresent},
      .madt = {.ioapic_id = static_cast<uint8_t>(config_.cpus),
               .ioapic_address = kIoapicAddress,
               .overrides = {{.source = 0, .gsi = 2, .flags = 0}}},
      .mcfg = acpi::McfgConfig{.ecam_base = kEcamBase},
  };
  for (uint32_t i = 0; i < config_.cpus; ++i)
    tables.madt.apic_ids.push_back(static_cast<uint8_t>(i));
  ASSIGN_OR_RETURN(GuestAddress rsdp,
                   acpi::WriteAcpiTables(*memory_, kAcpiTables, kAcpiTablesSize, tables));

  loader::LinuxBootConfig boot{.kernel = kernel,
                               .initrd = initrd,
                               .cmdline = config_.cmdline,
                               .e820 = E820Map(config_.memory_bytes),
                               .rsdp = rsdp,
                               .boot_params_address = kBootParams,
                               .cmdline_address = kCmdline};
  ASSIGN_OR_RETURN(loader::LinuxBootInfo info, loader::LoadLinux(*memory_, boot));
  RETURN_IF_ERROR(WriteResetStub(*memory_));
  RETURN_IF_ERROR(SetUpDevices());
  RETURN_IF_ERROR(SetUpPassthrough());
  return SetUpVcpus(info.entry, info.boot_params);
}

absl::Status Vmm::OpenConsole() {
  ScopedFd fd;
  const std::string flag = absl::StrCat("--serial=file:", config_.serial_path);
  switch (config_.serial) {
    case SerialMode::kNone:
      return absl::OkStatus();
    case SerialMode::kStdio:
      fd.reset(::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0));
      if (!fd.valid()) return ErrnoStatus(errno, "dup stdout for the console");
      break;
    case SerialMode::kFile: {
      // O_NOFOLLOW: a symlink at the path does not send the console (and its truncation) to
      // another file; O_NONBLOCK: a FIFO is refused below instead of waiting for a reader here.
      fd.reset(::open(config_.serial_path.c_str(),
                      O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600));
      if (!fd.valid()) {
        const int error = errno;
        struct stat st;
        const bool fifo = ::lstat(config_.serial_path.c_str(), &st) == 0 && S_ISFIFO(st.st_mode);
        return absl::InvalidArgumentError(absl::StrCat(flag, ": ",
                                                       fifo             ? "a FIFO"
                                                       : error == ELOOP ? "a symbolic link"
                                                                        : std::strerror(error)));
      }
      struct stat st;
      if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, "fstat ", flag);
      if (!S_ISREG(st.st_mode) && !S_ISCHR(st.st_mode)) {
        return absl::InvalidArgumentError(absl::StrCat(
            flag, ": ",
            S_ISFIFO(st.st_mode) ? "a FIFO" : "not a regular file or a character device"));
      }
      for (const std::string& input : {config_.kernel_path, config_.initrd_path}) {
        struct stat in;
        if (!input.empty() && ::stat(input.c_str(), &in) == 0 && in.st_dev == st.st_dev &&
            in.st_ino == st.st_ino) {
          return absl::InvalidArgumentError(
              absl::StrCat(flag, ": is the guest's kernel or initrd (", input, ")"));
        }
      }
      if (S_ISREG(st.st_mode) && ::ftruncate(fd.get(), 0) != 0) {
        return ErrnoStatus(errno, "ftruncate ", flag);
      }
      break;
    }
  }
  ASSIGN_OR_RETURN(console_out_, ConsoleOutput::Create(std::move(fd)));
  return absl::OkStatus();
}

absl::Status Vmm::SetUpDevices() {
  ASSIGN_OR_RETURN(EventFd irq, EventFd::Create());
  serial_irq_ = std::make_unique<EventFd>(std::move(irq));
  RETURN_IF_ERROR(vm_->AssignIrqfd(*serial_irq_, kCom1Irq));
  serial_ = std::make_shared<devices::Serial16550>([this] { (void)serial_irq_->Write(1); },
                                                   [this](absl::Span<const uint8_t> bytes) {
                                                     if (console_out_ != nullptr)
                                                       console_out_->Write(bytes);
                                                   });
  RETURN_IF_ERROR(pio_.Insert(serial_, kPortCom1, 8));
  RETURN_IF_ERROR(pio_.Insert(
      std::make_shared<devices::I8042>([this] { RequestExit(ExitReason::kReset, "guest reset"); }),
      kPortI8042, 5));
  RETURN_IF_ERROR(pio_.Insert(std::make_shared<devices::CmosRtc>(), kPortCmos, 2));
  // The ACPI events block: power button and PCI hotplug, signalled through the GED's interrupt.
  ASSIGN_OR_RETURN(EventFd ged, EventFd::Create());
  ged_irq_ = std::make_unique<EventFd>(std::move(ged));
  RETURN_IF_ERROR(vm_->AssignIrqfd(*ged_irq_, kGedGsi));
  acpi_events_ = std::make_shared<devices::AcpiEvents>(
      [this] { (void)ged_irq_->Write(1); },
      // On the vCPU thread whose _EJ0 wrote PCEJ: the device is detached before that write
      // completes, as a real slot is off once its eject method returns (QEMU, too, unplugs in
      // the eject write). A guest that looks at the slot right after its _EJ0 finds it empty, and
      // the guest does not run on (on a single vCPU, not at all) while the detach needs the CPU.
      [this](uint8_t slot) { OnGuestEjected(slot); });
  RETURN_IF_ERROR(pio_.Insert(acpi_events_, kPortAcpiEvents, devices::AcpiEvents::kSize));
  ASSIGN_OR_RETURN(AddressAllocator mmio_space,
                   AddressAllocator::Create(kPciMmioStart, kPciMmioEnd - kPciMmioStart + 1));
  ASSIGN_OR_RETURN(AddressAllocator io_space,
                   AddressAllocator::Create(kPciIoStart, 0x10000 - kPciIoStart));
  mmio_space_ = std::make_unique<AddressAllocator>(std::move(mmio_space));
  io_space_ = std::make_unique<AddressAllocator>(std::move(io_space));
  RETURN_IF_ERROR(pio_.Insert(std::make_shared<devices::AcpiSleepControl>([this] {
                                RequestExit(ExitReason::kPowerOff, "guest powered off");
                              }),
                              kPortAcpiSleep, 2));
  // The boot timer also feeds the control plane's boot time and guest-boot-complete event.
  if (config_.boot_timer || controller_ != nullptr) {
    RETURN_IF_ERROR(pio_.Insert(std::make_shared<devices::BootTimer>(
                                    start_,
                                    [this](absl::Duration d) {
                                      if (config_.boot_timer) {
                                        LogInfo("guest boot time: ", absl::ToInt64Milliseconds(d),
                                                " ms since vmm started");
                                      }
                                      if (controller_ != nullptr) {
                                        loop_->Post([this, d] { controller_->OnBootComplete(d); });
                                      }
                                    }),
                                kPortBootTimer, 1));
  }
  pci_ = std::make_shared<devices::PciRootBus>();
  RETURN_IF_ERROR(pio_.Insert(std::make_shared<devices::PciConfigIo>(pci_), kPortPciConfig, 8));
  RETURN_IF_ERROR(
      mmio_.Insert(std::make_shared<devices::PciConfigMmio>(pci_), kEcamBase, kEcamSize));
  return absl::OkStatus();
}

absl::Status Vmm::SetUpPassthrough() {
  if (config_.devices.empty()) return absl::OkStatus();
  for (const PassthroughConfig& pc : config_.devices) {
    absl::StatusOr<DeviceSummary> d =
        AttachPassthrough({.id = pc.id, .host_bdf = pc.host_bdf, .slot = std::nullopt},
                          /*hotplug=*/false);
    if (!d.ok()) {
      return absl::Status(
          d.status().code(),
          absl::StrCat("--device ", pc.id, " (host ", pc.host_bdf, "): ", d.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<DeviceSummary> Vmm::AttachPassthrough(const AddDeviceSpec& spec, bool hotplug) {
  std::lock_guard<std::mutex> lock(passthrough_mu_);
  for (const Passthrough& p : passthrough_) {
    if (p.id == spec.id) {
      return absl::AlreadyExistsError(absl::StrCat("id ", spec.id, " is in use"));
    }
    if (p.host_bdf == spec.host_bdf) {
      return absl::AlreadyExistsError(
          absl::StrCat("host device ", spec.host_bdf, " is already passed through as ", p.id));
    }
  }
  for (const DeviceSummary& d : PlatformDevices()) {
    if (d.id == spec.id)
      return absl::AlreadyExistsError(absl::StrCat("id ", spec.id, " is in use"));
  }
  // Every step below is undone, in reverse, if a later one fails.
  StepTimer timer;
  std::vector<std::function<void()>> undo;
  auto fail = [&](const char* step, const absl::Status& s) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    return absl::Status(s.code(), absl::StrCat(step, ": ", s.message()));
  };
  const std::optional<uint8_t> slot = spec.slot ? spec.slot : pci_->FreeSlot();
  if (!slot) return fail("slot", absl::ResourceExhaustedError("no free slot on the PCI root bus"));
  if (pci_->Occupied(*slot)) {
    return fail("slot", absl::ResourceExhaustedError(absl::StrCat("slot ", *slot, " is taken")));
  }
  if (vfio_container_ == nullptr) {
    absl::StatusOr<std::shared_ptr<vfio::VfioContainer>> container = vfio::VfioContainer::Open();
    if (!container.ok()) {
      return fail("open the VFIO container",
                  absl::Status(container.status().code(),
                               absl::StrCat("VFIO unavailable (are the vfio and vfio-pci modules "
                                            "loaded?): ",
                                            container.status().message())));
    }
    vfio_container_ = *std::move(container);
    undo.push_back([this] { vfio_container_.reset(); });
  }
  if (absl::Status s = CheckBoundToVfioPci(spec.host_bdf); !s.ok()) {
    return fail("check the host device", s);
  }
  absl::StatusOr<int> group_id = vfio::VfioGroup::GroupOfDevice(spec.host_bdf);
  if (!group_id.ok()) return fail("find the IOMMU group", group_id.status());
  if (!vfio_groups_.count(*group_id)) {
    absl::StatusOr<std::shared_ptr<vfio::VfioGroup>> group = vfio::VfioGroup::Open(*group_id);
    if (!group.ok()) return fail("open the IOMMU group", group.status());
    if (absl::Status s = (*group)->SetContainer(vfio_container_); !s.ok()) {
      return fail("add the group to the container", s);
    }
    vfio_groups_[*group_id] = {*group, 0};
    undo.push_back([this, id = *group_id] { vfio_groups_.erase(id); });
  }
  if (!vfio_container_->iommu_type()) {
    if (absl::Status s = vfio_container_->SetType1Iommu().status(); !s.ok()) {
      return fail("set the container's IOMMU model", s);
    }
  }
  timer.Step("VFIO container and group");
  vfio::VfioGroup& group = *vfio_groups_[*group_id].group;
  absl::StatusOr<std::unique_ptr<vfio::VfioDevice>> vfio_device = absl::InternalError("not opened");
  if (dma_listener_ == nullptr) {
    // Guest RAM into the container: all of it, now (the listener replays the address space), on
    // a helper thread while this one opens the device. The open is when vfio-pci resets it, mostly
    // waiting on the hardware, and mapping is CPU work (pinning pages), so the two overlap. This
    // way round, not the other: a new thread starts behind the running ones in the scheduler's
    // queue, so a helper doing the open started its reset only once the map had run (measured in
    // the lab with hugetlb RAM: map with the open 20 ms, against 12-16 ms this way).
    auto listener = std::make_unique<vfio::DmaMappingListener>(*vfio_container_);
    absl::Status s;
    absl::Duration map_time;  // Written by the helper; read after Join().
    Alongside mapper([&] {
      std::lock_guard<std::mutex> machine(machine_mu_);
      const absl::Time start = absl::Now();
      s = system_memory_.RegisterListener(listener.get());
      map_time = absl::Now() - start;
    });
    const absl::Time open_start = absl::Now();
    vfio_device = group.GetDevice(spec.host_bdf);
    const absl::Duration open_time = absl::Now() - open_start;
    mapper.Join();
    // Each alone too: what the kernel takes for the two (the benchmark compares them with its
    // kernel_floor, the same calls with no VMM around them).
    timer.Step(absl::StrCat("DMA map ", absl::ToInt64Milliseconds(map_time), " ms with the open ",
                            absl::ToInt64Milliseconds(open_time), " ms alongside:"));
    if (!s.ok()) {
      vfio_device = absl::CancelledError("");  // Closed before its group goes.
      return fail("DMA-map guest RAM", s);
    }
    dma_listener_ = std::move(listener);
    undo.push_back([this] {
      std::lock_guard<std::mutex> machine(machine_mu_);
      (void)system_memory_.UnregisterListener(dma_listener_.get());
      dma_listener_.reset();
    });
  } else {
    vfio_device = group.GetDevice(spec.host_bdf);
    timer.Step("open (vfio-pci resets it)");
  }
  if (msi_routes_ == nullptr) {
    msi_routes_ = std::make_unique<iommu::MsiRoutes>(*vm_, kMsiFirstGsi, kMsiGsiCount,
                                                     kvm::DefaultIrqchipRoutes());
    undo.push_back([this] { msi_routes_.reset(); });
  }
  if (!vfio_device.ok()) return fail("open the device", vfio_device.status());
  absl::StatusOr<std::shared_ptr<passthrough::VfioPciDevice>> device =
      passthrough::VfioPciDevice::Create(
          *std::move(vfio_device),
          {vm_.get(), &system_memory_, &mmio_, &pio_, msi_routes_.get(), &machine_mu_},
          {.id = spec.id,
           .device_number = next_device_number_++,
           .guest_requester_id = static_cast<uint16_t>(*slot << 3),
           .intx_gsi = SlotGsi(*slot)});
  if (!device.ok()) return fail("attach the device", device.status());
  timer.Step("attach");
  undo.push_back([&device] { device->reset(); });  // Detached before its DMA mappings go.
  // As firmware would: BARs at free, naturally aligned addresses; the guest may move them.
  std::vector<std::pair<bool, uint64_t>> bars;  // (io, address) allocated.
  undo.push_back([this, &bars] {
    for (auto [io, address] : bars) (void)(io ? *io_space_ : *mmio_space_).Free(address);
  });
  absl::Status placed =
      (*device)->PlaceBars([&](const passthrough::VirtualBar& bar) -> absl::StatusOr<uint64_t> {
        AddressAllocator& space = bar.io ? *io_space_ : *mmio_space_;
        ASSIGN_OR_RETURN(uint64_t address,
                         space.Allocate(bar.size, std::max<uint64_t>(bar.size, bar.io ? 4 : 4096)));
        bars.push_back({bar.io, address});
        return address;
      });
  if (!placed.ok()) return fail("place the BARs", placed);
  if (absl::Status s = pci_->AddDevice(*slot, *device); !s.ok())
    return fail("plug into the slot", s);
  ++vfio_groups_[*group_id].devices;
  Passthrough entry{spec.id, spec.host_bdf,   *slot,       *group_id,
                    *device, std::move(bars), std::nullopt};
  passthrough_.push_back(std::move(entry));
  timer.Step("plug");
  LogInfo("vmm: attached ", spec.id, " (host ", spec.host_bdf, ") in ", timer.Summary());
  // Only now does the guest hear of it, and from the loop's next turn: the request that added it
  // has then been answered. The guest reacts at once (a vCPU wakes to rescan the slot), and on a
  // busy host CPU that work ran ahead of the reply (2-6 ms in the lab, where L1 has one CPU).
  if (hotplug && !loop_->Post([this, slot = *slot,
                               added = std::weak_ptr<passthrough::VfioPciDevice>(*device)] {
        NotifyAdded(slot, added);
      })) {
    acpi_events_->DeviceAdded(*slot);  // No loop (it stopped, or never ran): say it now.
  }
  return SummaryLocked(passthrough_.back());
}

void Vmm::NotifyAdded(uint8_t slot, const std::weak_ptr<passthrough::VfioPciDevice>& added) {
  // Not if it went meanwhile (the guest may eject any slot, even one it has not been told of).
  const std::shared_ptr<passthrough::VfioPciDevice> device = added.lock();
  if (device == nullptr) return;
  std::lock_guard<std::mutex> lock(passthrough_mu_);
  for (const Passthrough& p : passthrough_) {
    if (p.slot == slot && p.device == device) acpi_events_->DeviceAdded(slot);
  }
}

void Vmm::DetachPassthroughLocked(size_t index) {
  StepTimer timer;
  Passthrough p = std::move(passthrough_[index]);
  passthrough_.erase(passthrough_.begin() + static_cast<long>(index));
  (void)pci_->RemoveDevice(p.slot);  // Off the bus first: no new config accesses.
  for (auto [io, address] : p.bars) (void)(io ? *io_space_ : *mmio_space_).Free(address);
  if (!passthrough_.empty()) {
    // Off the machine (interrupts, BAR slots and traps) with its DMA stopped; then its fd closes
    // (vfio-pci resets it). The container keeps guest RAM mapped for the other devices.
    p.device->Detach();
    p.device.reset();
    if (auto group = vfio_groups_.find(p.group_id);
        group != vfio_groups_.end() && --group->second.devices == 0) {
      vfio_groups_.erase(group);
    }
    LogInfo("vmm: detached ", p.id, " (host ", p.host_bdf, ") in ", timer.Summary());
    return;
  }
  // The last one: guest RAM leaves the container while its groups still hold the IOMMU (no DMA
  // mapping outlives the devices); then routes, groups and container go, and a later hotplug
  // starts afresh and replays the mappings. The slow parts overlap: on a helper thread the device
  // detaches and its fd closes (vfio-pci resets it, waiting on the hardware), while the device's
  // own helper has KVM tear down its INTx irqfd (grace periods); here guest RAM is unmapped (CPU:
  // unpinning pages), outside the machine lock so that the detach can take it. (The other way
  // round, as AttachPassthrough does it, measured no different in the lab.) In the lab this took
  // the detach from 44-55 ms to 28-32 ms, the unmap now being the longest part. Unmapping first is
  // safe: VFIO removes the IOMMU entries, and flushes, before it unpins a page, so a late DMA
  // faults; it cannot land.
  std::vector<AddressSpaceRegion> mapped;
  if (dma_listener_ != nullptr) {
    std::lock_guard<std::mutex> machine(machine_mu_);
    mapped = system_memory_.RemoveListener(dma_listener_.get()).value_or(mapped);
  }
  std::shared_ptr<passthrough::VfioPciDevice> device = std::move(p.device);
  Alongside closer([&device] {
    device->Detach();
    device.reset();
  });
  for (auto r = mapped.rbegin(); r != mapped.rend(); ++r) dma_listener_->RegionDel(*r);
  timer.Step("DMA unmap");
  closer.Join();
  timer.Step("then the detach, close and reset alongside");
  dma_listener_.reset();
  msi_routes_.reset();
  vfio_groups_.clear();
  vfio_container_.reset();
  LogInfo("vmm: detached ", p.id, " (host ", p.host_bdf, ") in ", timer.Summary());
}

void Vmm::TearDownPassthrough() {
  std::lock_guard<std::mutex> lock(passthrough_mu_);
  while (!passthrough_.empty()) DetachPassthroughLocked(passthrough_.size() - 1);
}

DeviceSummary Vmm::SummaryLocked(const Passthrough& p) const {
  const uint32_t id = p.device->ConfigRead(0);
  return {p.id, DeviceSummary::Kind::kVfioPci, absl::StrFormat("0000:00:%02x.0", p.slot),
          p.host_bdf,
          absl::StrFormat("vfio-pci %04x:%04x, interrupts: %s%s", id & 0xffff, id >> 16,
                          p.device->interrupt_mode(), p.removing ? ", being removed" : "")};
}

absl::StatusOr<DeviceSummary> Vmm::AddDevice(const AddDeviceSpec& spec) {
  return AttachPassthrough(spec, /*hotplug=*/true);
}

absl::StatusOr<DeviceSummary> Vmm::BeginRemoveDevice(const std::string& id) {
  std::lock_guard<std::mutex> lock(passthrough_mu_);
  for (Passthrough& p : passthrough_) {
    if (p.id != id) continue;
    if (p.removing)
      return absl::FailedPreconditionError(absl::StrCat(id, " is already being removed"));
    p.removing = absl::Now();
    acpi_events_->RequestEject(p.slot);
    return SummaryLocked(p);
  }
  for (const DeviceSummary& d : PlatformDevices()) {
    if (d.id == id) {
      return absl::FailedPreconditionError(
          absl::StrCat(id, " is part of the platform and cannot be removed"));
    }
  }
  return absl::NotFoundError(absl::StrCat("no device ", id));
}

bool Vmm::CancelRemoveDevice(const std::string& id) {
  std::lock_guard<std::mutex> lock(passthrough_mu_);
  for (Passthrough& p : passthrough_) {
    if (p.id == id) {
      p.removing.reset();
      acpi_events_->CancelEject(p.slot);
      return true;
    }
  }
  return false;  // The guest released it meanwhile: it is gone.
}

void Vmm::OnGuestEjected(uint8_t slot) {
  // On a vCPU thread: the guest has released the device in `slot` (its _EJ0 ran), asked or not.
  std::optional<DeviceSummary> gone;
  std::string asked;
  {
    std::lock_guard<std::mutex> lock(passthrough_mu_);
    for (size_t i = 0; i < passthrough_.size(); ++i) {
      if (passthrough_[i].slot != slot) continue;
      gone = SummaryLocked(passthrough_[i]);
      if (passthrough_[i].removing) {
        asked =
            absl::StrCat(" ", absl::ToInt64Milliseconds(absl::Now() - *passthrough_[i].removing),
                         " ms after the request");
      }
      DetachPassthroughLocked(i);
      break;
    }
  }
  if (!gone) return;  // An empty slot: nothing to do (the guest's mistake, or malice).
  LogInfo("vmm: ", gone->id, " (host ", gone->host_bdf, ") released by the guest", asked,
          " and detached");
  if (controller_ != nullptr) {
    controller_->OnDeviceEvent({VmEvent::DeviceChanged::Type::kRemoved, *gone, "guest ejected"});
  }
}

absl::Status Vmm::SetUpVcpus(GuestAddress entry, GuestAddress boot_params) {
  ASSIGN_OR_RETURN(kvm::Cpuid supported, kvm_->GetSupportedCpuid());
  // The in-kernel LAPIC (created in Build) emulates the TSC-deadline timer where KVM says so.
  absl::StatusOr<int> tsc_deadline = kvm_->CheckExtension(KVM_CAP_TSC_DEADLINE_TIMER);
  const kvm::GuestCpuidOptions cpuid_options{.tsc_deadline_timer =
                                                 tsc_deadline.ok() && *tsc_deadline > 0};
  ASSIGN_OR_RETURN(std::vector<uint32_t> saved_msrs, kvm_->GetMsrIndexList());
  std::vector<kvm_msr_entry> msrs;
  for (const BootMsr& m : kBootMsrs) {
    // Only MSRs this KVM saves and restores; the rest are left at KVM's reset values.
    if (std::find(saved_msrs.begin(), saved_msrs.end(), m.index) != saved_msrs.end()) {
      msrs.push_back(kvm_msr_entry{.index = m.index, .reserved = 0, .data = m.value});
    }
  }
  for (uint32_t id = 0; id < config_.cpus; ++id) {
    ASSIGN_OR_RETURN(std::unique_ptr<kvm::Vcpu> vcpu, vm_->CreateVcpu(id));
    ASSIGN_OR_RETURN(kvm::Cpuid cpuid,
                     kvm::BuildGuestCpuid(supported, id, config_.cpus, cpuid_options));
    RETURN_IF_ERROR(vcpu->SetCpuid2(cpuid));
    RETURN_IF_ERROR(vcpu->SetMsrs(msrs));
    ASSIGN_OR_RETURN(kvm_lapic_state lapic, vcpu->GetLapic());
    SetLapicLvt(lapic, 0x350, 0x700);  // LVT LINT0: ExtINT, so the PIC reaches the CPU.
    SetLapicLvt(lapic, 0x360, 0x400);  // LVT LINT1: NMI.
    RETURN_IF_ERROR(vcpu->SetLapic(lapic));
    ASSIGN_OR_RETURN(kvm_fpu fpu, vcpu->GetFpu());
    fpu.fcw = 0x37f;
    fpu.mxcsr = 0x1f80;
    RETURN_IF_ERROR(vcpu->SetFpu(fpu));
    if (id == 0) {
      // The BSP starts at the kernel's 64-bit entry; the in-kernel LAPIC holds the APs in
      // wait-for-SIPI until Linux starts them.
      RETURN_IF_ERROR(kvm::EnterLongMode(
          *memory_, *vcpu, {.gdt = kGdt, .page_tables = kPageTables, .identity_map_gib = 4}));
      kvm_regs regs{};
      regs.rip = entry.raw();
      regs.rsi = boot_params.raw();
      regs.rflags = 0x2;
      RETURN_IF_ERROR(vcpu->SetRegs(regs));
    }
    vcpus_.push_back(std::move(vcpu));
  }
  return absl::OkStatus();
}

void Vmm::RequestExit(ExitReason reason, const std::string& detail) {
  {
    std::lock_guard<std::mutex> lock(exit_mu_);
    if (exit_reason_ != ExitReason::kNone) return;
    exit_reason_ = reason;
    exit_detail_ = detail;
  }
  (void)exit_event_->Write(1);
}

void Vmm::HandleExit(kvm::Vcpu* vcpu, const kvm::VcpuExit& exit) {
  if (const auto* in = std::get_if<kvm::exit::IoIn>(&exit)) {
    for (uint32_t i = 0; i < in->count; ++i) {
      absl::Span<uint8_t> one = in->data.subspan(size_t{i} * in->size, in->size);
      if (!pio_.Read(in->port, one)) std::fill(one.begin(), one.end(), 0xff);
    }
  } else if (const auto* out = std::get_if<kvm::exit::IoOut>(&exit)) {
    for (uint32_t i = 0; i < out->count; ++i) {
      pio_.Write(out->port, out->data.subspan(size_t{i} * out->size, out->size));
    }
  } else if (const auto* rd = std::get_if<kvm::exit::MmioRead>(&exit)) {
    if (!mmio_.Read(rd->address, rd->data)) std::fill(rd->data.begin(), rd->data.end(), 0xff);
  } else if (const auto* wr = std::get_if<kvm::exit::MmioWrite>(&exit)) {
    mmio_.Write(wr->address, wr->data);
  } else if (std::holds_alternative<kvm::exit::Hlt>(exit) ||
             std::holds_alternative<kvm::exit::Interrupted>(exit)) {
    // HLT is handled by the in-kernel LAPIC; an interrupted run just loops (and sees stopping_).
  } else if (std::holds_alternative<kvm::exit::Shutdown>(exit)) {
    RequestExit(ExitReason::kTripleFault,
                absl::StrCat("vCPU ", vcpu->id(), " triple fault: ", DescribeRegisters(*vcpu)));
  } else if (const auto* ev = std::get_if<kvm::exit::SystemEvent>(&exit)) {
    if (ev->type == KVM_SYSTEM_EVENT_RESET) {
      RequestExit(ExitReason::kReset, "guest reset (system event)");
    } else if (ev->type == KVM_SYSTEM_EVENT_SHUTDOWN) {
      RequestExit(ExitReason::kPowerOff, "guest shut down (system event)");
    } else {
      RequestExit(ExitReason::kError,
                  absl::StrCat("vCPU ", vcpu->id(), ": ", kvm::DescribeExit(exit)));
    }
  } else {
    RequestExit(ExitReason::kError, absl::StrCat("vCPU ", vcpu->id(), ": ", kvm::DescribeExit(exit),
                                                 "; ", DescribeRegisters(*vcpu)));
  }
}

void Vmm::VcpuLoop(kvm::Vcpu* vcpu) {
  vcpu_tids_[vcpu->id()].store(::gettid(), std::memory_order_relaxed);
  while (!stopping_.load(std::memory_order_acquire)) {
    {
      std::unique_lock<std::mutex> lock(pause_mu_);
      if (paused_) {
        ++parked_;
        pause_cv_.notify_all();
        pause_cv_.wait(lock, [&] { return !paused_ || stopping_.load(); });
        --parked_;
        continue;  // Look at stopping_ again before running.
      }
    }
    absl::StatusOr<kvm::VcpuExit> exit = vcpu->Run();
    if (!exit.ok()) {
      RequestExit(ExitReason::kError, std::string(exit.status().message()));
      return;
    }
    HandleExit(vcpu, *exit);
  }
}

void Vmm::StopVcpus() {
  stopping_.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(pause_mu_);
    paused_ = false;
  }
  pause_cv_.notify_all();
  for (auto& v : vcpus_) v->Kick();
  for (auto& t : vcpu_threads_) {
    if (t.joinable()) t.join();
  }
  vcpu_threads_.clear();
}

absl::Status Vmm::WatchHost() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  signal_fd_.reset(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signal_fd_.valid()) return ErrnoStatus(errno, "signalfd");
  RETURN_IF_ERROR(loop_->Watch(signal_fd_.get(), [this] {
    signalfd_siginfo info;
    if (::read(signal_fd_.get(), &info, sizeof(info)) == sizeof(info)) {
      RequestExit(ExitReason::kSignal, absl::StrCat("stopped by signal ", info.ssi_signo));
    }
  }));
  RETURN_IF_ERROR(loop_->Watch(exit_event_->fd(), [this] {
    (void)exit_event_->Read();
    std::string detail;
    {
      std::lock_guard<std::mutex> lock(exit_mu_);
      if (exit_reason_ == ExitReason::kNone) return;
      detail = exit_detail_;
    }
    if (controller_ != nullptr) controller_->OnStopping(detail);
    loop_->Quit();
  }));
  if (console_out_ != nullptr) {
    RETURN_IF_ERROR(loop_->Watch(console_out_->ready_fd(), [this] { FlushConsole(); }));
  }
  // Console input, where stdin can be watched (not a regular file, which epoll refuses).
  if (config_.serial == SerialMode::kStdio) {
    (void)loop_->Watch(STDIN_FILENO, [this] { ReadConsoleInput(); });
  }
  return absl::OkStatus();
}

void Vmm::FlushConsole() {
  if (!console_out_->Flush() || console_retry_) return;
  // The reader is slow: try again shortly. (Its fd is not watched for writability: a regular
  // file cannot be, and this way a stalled reader costs one wakeup per 10 ms, not one per byte.)
  console_retry_ = true;
  loop_->RunOnLoopAfter(absl::Milliseconds(10), [this] {
    console_retry_ = false;
    FlushConsole();
  });
}

void Vmm::ReadConsoleInput() {
  uint8_t buf[256];
  const ssize_t got = ::read(STDIN_FILENO, buf, sizeof(buf));
  if (got < 0 && (errno == EINTR || errno == EAGAIN)) return;
  // Either way stdin is not read again until the UART's FIFO has taken this input (the guest
  // reads at its own pace); at end of input (or an error) not at all, and the guest runs on
  // without a keyboard.
  loop_->Unwatch(STDIN_FILENO);
  if (got <= 0) return;
  console_in_.assign(buf, buf + got);
  FeedConsoleInput();
}

void Vmm::FeedConsoleInput() {
  const size_t took = serial_->QueueInput(console_in_);
  console_in_.erase(console_in_.begin(), console_in_.begin() + static_cast<long>(took));
  if (!console_in_.empty()) {
    loop_->RunOnLoopAfter(absl::Milliseconds(10), [this] { FeedConsoleInput(); });
  } else if (!loop_->Watch(STDIN_FILENO, [this] { ReadConsoleInput(); }).ok()) {
    LogWarning("vmm: console input stopped: stdin cannot be watched again");
  }
}

int Vmm::Run() {
  // An interactive console: raw mode, so keys reach the guest's shell as typed.
  termios saved{};
  const bool tty = config_.serial == SerialMode::kStdio && ::isatty(STDIN_FILENO) &&
                   ::tcgetattr(STDIN_FILENO, &saved) == 0;
  if (tty) {
    termios raw = saved;
    cfmakeraw(&raw);
    raw.c_oflag = saved.c_oflag;  // Keep output processing (\n -> \r\n).
    raw.c_lflag |= ISIG;          // Ctrl-C still stops the VMM.
    ::tcsetattr(STDIN_FILENO, TCSANOW, &raw);
  }

  if (config_.boot_timer) {
    LogInfo("vm built in ", absl::ToInt64Milliseconds(absl::Now() - start_), " ms; starting ",
            vcpus_.size(), " vCPU(s)");
  }
  for (auto& v : vcpus_) {
    kvm::Vcpu* vcpu = v.get();
    vcpu_threads_.emplace_back([this, vcpu] {
      pthread_setname_np(pthread_self(), absl::StrCat("vcpu", vcpu->id()).c_str());
      VcpuLoop(vcpu);
    });
  }
  if (absl::Status s = WatchHost(); !s.ok()) {
    RequestExit(ExitReason::kError, absl::StrCat("event loop setup: ", s.message()));
  } else {
    if (controller_ != nullptr) loop_->Post([this] { controller_->OnStarted(); });
    loop_->Run();
  }
  loop_->Close();
  StopVcpus();
  if (console_out_ != nullptr) {
    // What the guest wrote last (a panic, its farewell), unless the reader is stuck.
    console_out_->Drain(absl::Seconds(1));
    if (console_out_->dropped() > 0) {
      LogWarning("vmm: ", console_out_->dropped(),
                 " bytes of console output were dropped (the reader did not keep up)");
    }
  }
  if (tty) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);

  std::lock_guard<std::mutex> lock(exit_mu_);
  switch (exit_reason_) {
    case ExitReason::kReset:
    case ExitReason::kPowerOff:
    case ExitReason::kSignal:
    case ExitReason::kApiShutdown:
      LogInfo("vmm: ", exit_detail_);
      return 0;
    case ExitReason::kTripleFault:
      LogError("vmm: ", exit_detail_);
      return 3;
    case ExitReason::kError:
    case ExitReason::kNone:
      LogError("vmm: ", exit_detail_);
      return 1;
  }
  return 1;
}

}  // namespace vmmkit::vmm

namespace vmmkit::vmm {

// --- VmOperations: what the controller asks of the VM (on the event loop) ------------------------

absl::Status Vmm::PauseVcpus() {
  {
    std::lock_guard<std::mutex> lock(pause_mu_);
    paused_ = true;
  }
  for (auto& v : vcpus_) v->Kick();  // Out of KVM_RUN; they park at the top of VcpuLoop.
  std::unique_lock<std::mutex> lock(pause_mu_);
  const bool all = pause_cv_.wait_for(lock, std::chrono::seconds(5), [&] {
    return parked_ == vcpu_threads_.size() || stopping_.load();
  });
  if (!all) {
    paused_ = false;
    pause_cv_.notify_all();
    return absl::DeadlineExceededError(absl::StrCat("only ", parked_, " of ", vcpu_threads_.size(),
                                                    " vCPUs stopped within 5 s; resumed them"));
  }
  return absl::OkStatus();
}

absl::Status Vmm::ResumeVcpus() {
  {
    std::lock_guard<std::mutex> lock(pause_mu_);
    paused_ = false;
  }
  pause_cv_.notify_all();
  return absl::OkStatus();
}

absl::Status Vmm::RequestGuestPowerOff() {
  // A press of the ACPI power button (GED interrupt -> _EVT -> Notify(PWRB, 0x80)); what the
  // guest does with it is up to the guest (acpid, systemd-logind, or nothing).
  acpi_events_->PressPowerButton();
  return absl::OkStatus();
}

void Vmm::Stop(const std::string& reason) { RequestExit(ExitReason::kApiShutdown, reason); }

std::vector<DeviceSummary> Vmm::PlatformDevices() const {
  using Kind = DeviceSummary::Kind;
  std::vector<DeviceSummary> devices = {
      {"com1", Kind::kPlatform, "", "", "16550A UART, I/O 0x3f8, IRQ 4"},
      {"i8042", Kind::kPlatform, "", "", "keyboard controller (reset line), I/O 0x60/0x64"},
      {"rtc", Kind::kPlatform, "", "", "CMOS RTC, I/O 0x70"},
      {"acpi-sleep", Kind::kPlatform, "", "", "ACPI sleep control/status registers"},
      {"acpi-events", Kind::kPlatform, "", "",
       "ACPI power button and PCI hotplug (generic event device, GSI 5, I/O 0xa00)"},
      {"pci-host", Kind::kPci, "0000:00:00.0", "", "PCI host bridge (0xcf8 and ECAM)"},
  };
  if (config_.boot_timer || controller_ != nullptr) {
    devices.push_back({"boot-timer", Kind::kPlatform, "", "", "boot-complete port 0x440"});
  }
  return devices;
}

namespace {
uint64_t CountDirEntries(const char* path) {
  uint64_t n = 0;
  if (DIR* d = ::opendir(path)) {
    while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}
}  // namespace

Resources Vmm::CountResources() const {
  Resources r;
  if (dma_listener_ != nullptr) {
    for (const vfio::IovaRange& m : dma_listener_->mappings()) {
      ++r.dma_mappings;
      r.dma_mapped_bytes += m.last.raw() - m.start.raw() + 1;
    }
  }
  r.msi_routes = msi_routes_ != nullptr ? msi_routes_->size() : 0;
  {
    std::lock_guard<std::mutex> machine(machine_mu_);
    r.memory_listeners = system_memory_.listener_count();
  }
  r.open_fds = CountDirEntries("/proc/self/fd") - 1;  // Less the one opendir holds.
  r.threads = CountDirEntries("/proc/self/task");
  return r;
}

VmStatus Vmm::Describe() const {
  VmStatus s;
  s.config = config_;
  s.create_time = start_;
  for (const auto& tid : vcpu_tids_) s.vcpu_tids.push_back(tid.load(std::memory_order_relaxed));
  s.devices = PlatformDevices();
  std::lock_guard<std::mutex> lock(passthrough_mu_);
  for (const Passthrough& p : passthrough_) s.devices.push_back(SummaryLocked(p));
  s.resources = CountResources();
  return s;
}

}  // namespace vmmkit::vmm
