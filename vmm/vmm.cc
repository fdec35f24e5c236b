#include "vmm/vmm.h"

#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "acpi/aml.h"
#include "acpi/tables.h"
#include "base/log.h"
#include "base/process_counts.h"
#include "base/status.h"
#include "base/status_macros.h"
#include "base/thread_start.h"
#include "devices/legacy.h"
#include "loader/decompress.h"
#include "loader/linux_loader.h"
#include "loader/multiboot.h"
#include "loader/pvh.h"
#include "vmm/boot_vcpus.h"
#include "vmm/exit_dispatch.h"
#include "vmm/layout.h"
#include "vmm/vfio_pci_kind.h"
#include "vmm/virtio_blk_kind.h"
#include "vmm/virtio_net_kind.h"
#include "vmm/virtio_vsock_kind.h"

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

absl::StatusOr<std::unique_ptr<Vmm>> Vmm::Create(const VmmConfig& config, absl::Time start,
                                                 const ApiStarter& start_api) {
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
  RETURN_IF_ERROR(vmm->StartApi(start_api));
  RETURN_IF_ERROR(vmm->Build());
  return vmm;
}

absl::Status Vmm::StartApi(const ApiStarter& start_api) {
  ASSIGN_OR_RETURN(loop_, EventLoop::Create());
  if (!start_api) return absl::OkStatus();
  VmOperations& ops = *this;  // A private base: converted here, inside the class.
  controller_ = std::make_unique<VmController>(ops, *loop_);
  // The server lives on a thread of its own, confined as an API thread from its first
  // instruction, so that gRPC's threads, which it and they start, inherit that confinement; it
  // also shuts the server down (gRPC's own work at shutdown is an API thread's, not the loop's).
  absl::Notification started;
  absl::Status status;
  api_thread_ = std::thread([this, &start_api, &started, &status] {
    ThreadStarted("api");
    absl::StatusOr<std::shared_ptr<void>> server = start_api(*controller_);
    status = server.status();
    started.Notify();  // The three captured references are not used after this.
    if (!server.ok()) return;
    stop_api_.WaitForNotification();
    server->reset();
  });
  started.WaitForNotification();
  if (!status.ok()) api_thread_.join();
  return status;
}

Vmm::~Vmm() {
  // Release RPCs waiting for the loop before the server goes; then the vCPUs; then the devices
  // they used.
  if (loop_ != nullptr) loop_->Close();  // Null only if its creation failed in Create.
  if (api_thread_.joinable()) {
    stop_api_.Notify();
    api_thread_.join();
  }
  if (vcpus_ != nullptr) vcpus_->Stop();
  device_manager_.reset();  // Detaches every function while the machine is still there.
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

  ASSIGN_OR_RETURN(machine_,
                   Machine::Create({.memory_bytes = config_.memory_bytes,
                                    .backing = config_.memory_backing,
                                    .prefault = config_.prefault,
                                    .iommu = config_.iommu,
                                    .iommu_caching_mode = config_.iommu_caching_mode,
                                    .irqchip = config_.split_irqchip ? irq::IrqchipMode::kSplit
                                                                     : irq::IrqchipMode::kInKernel,
                                    .ioapic_id = static_cast<uint8_t>(config_.cpus)}));
  GuestMemory& memory = machine_->memory();
  phases_.machine = absl::Now();

  // ACPI first: the loader passes the RSDP's address in the zero page.
  acpi::AcpiTables tables{
      .dsdt_body = BuildDsdt(config_.memory_bytes),
      .fadt = {.reset_register = acpi::SystemIoByte(kPortI8042 + 4),
               .reset_value = 0xfe,
               .sleep_control = acpi::SystemIoByte(kPortAcpiSleep),
               .sleep_status = acpi::SystemIoByte(kPortAcpiSleep + 1),
               // No kIapc8042: vmm's i8042 is only the reset line (port 0x64, command 0xfe,
               // which the reset register, reboot=k and the reset stub use without a driver).
               // Claiming a keyboard controller made Linux probe it directly (no PNP0303 in the
               // DSDT) and wait out every AUX command the device does not answer, seconds of
               // every boot (docs/boot.md).
               .iapc_boot_arch = acpi::kIapcVgaNotPresent},
      .madt = {.ioapic_id = static_cast<uint8_t>(config_.cpus),
               .ioapic_address = kIoapicAddress,
               .overrides = {{.source = 0, .gsi = 2, .flags = 0}},
               .pcat_compat = !config_.split_irqchip},
      .mcfg = acpi::McfgConfig{.ecam_base = kEcamBase},
  };
  if (config_.iommu) {
    tables.dmar = acpi::DmarConfig{.register_base = kVtdBase};
    if (config_.split_irqchip) {
      // Interrupt remapping, for which Linux also needs the IOAPIC under the unit.
      tables.dmar->interrupt_remapping = true;
      tables.dmar->ioapic = acpi::DmarConfig::IoapicScope{
          .enumeration_id = static_cast<uint8_t>(config_.cpus), .source_id = kIoapicSourceId};
    }
  }
  for (uint32_t i = 0; i < config_.cpus; ++i)
    tables.madt.apic_ids.push_back(static_cast<uint8_t>(i));
  ASSIGN_OR_RETURN(GuestAddress rsdp,
                   acpi::WriteAcpiTables(memory, kAcpiTables, kAcpiTablesSize, tables));

  BootEntry entry;
  if (loader::IsMultiboot(kernel)) {
    // As GRUB and QEMU, the kernel's path leads its command line (some kernels take it as argv[0]).
    loader::MultibootConfig boot{
        .kernel = kernel,
        .cmdline = config_.cmdline.empty()
                       ? config_.kernel_path
                       : absl::StrCat(config_.kernel_path, " ", config_.cmdline),
        .e820 = E820Map(config_.memory_bytes),
        .info_address = kBootParams,
        .strings_address = kCmdline};
    if (!config_.initrd_path.empty()) {
      boot.module = initrd;
      boot.module_string = config_.initrd_path;
    }
    ASSIGN_OR_RETURN(loader::MultibootBootInfo info, loader::LoadMultiboot(memory, boot));
    entry = {
        .protocol = BootEntry::Protocol::kMultiboot, .entry = info.entry, .boot_info = info.info};
  } else {
    ASSIGN_OR_RETURN(entry, LoadLinuxKernel(kernel, initrd, rsdp));
  }
  phases_.loaded = absl::Now();
  RETURN_IF_ERROR(WriteResetStub(memory));
  RETURN_IF_ERROR(SetUpDevices());
  RETURN_IF_ERROR(SetUpPassthrough());
  return SetUpVcpus(entry);
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
  ASSIGN_OR_RETURN(serial_irq_, irq::Irqfd::Create(machine_->irq_lines(), kCom1Irq));
  serial_ = std::make_shared<devices::Serial16550>([this] { (void)serial_irq_->Trigger(); },
                                                   [this](absl::Span<const uint8_t> bytes) {
                                                     if (console_out_ != nullptr)
                                                       console_out_->Write(bytes);
                                                   });
  RETURN_IF_ERROR(machine_->pio().Insert(serial_, kPortCom1, 8));
  RETURN_IF_ERROR(machine_->pio().Insert(
      std::make_shared<devices::I8042>([this] { RequestExit(ExitReason::kReset, "guest reset"); }),
      kPortI8042, 5));
  ASSIGN_OR_RETURN(rtc_irq_, irq::Irqfd::Create(machine_->irq_lines(), kRtcIrq));
  rtc_ = std::make_shared<devices::CmosRtc>(absl::Now, [this] { (void)rtc_irq_->Trigger(); });
  RETURN_IF_ERROR(machine_->pio().Insert(rtc_, kPortCmos, 2));
  // The ACPI events block: power button and PCI hotplug, signalled through the GED's interrupt.
  ASSIGN_OR_RETURN(ged_irq_, irq::Irqfd::Create(machine_->irq_lines(), kGedGsi));
  acpi_events_ = std::make_shared<devices::AcpiEvents>([this] { (void)ged_irq_->Trigger(); });
  RETURN_IF_ERROR(
      machine_->pio().Insert(acpi_events_, kPortAcpiEvents, devices::AcpiEvents::kSize));
  hotplug_slots_ = std::make_shared<pci::HotplugSlots>(
      [this] { acpi_events_->Raise(devices::AcpiEvents::kPciHotplug); },
      // On the vCPU thread whose _EJ0 wrote PCEJ: the device is detached before that write
      // completes, as a real slot is off once its eject method returns (QEMU, too, unplugs in
      // the eject write). A guest that looks at the slot right after its _EJ0 finds it empty, and
      // the guest does not run on (on a single vCPU, not at all) while the detach needs the CPU.
      [this](uint8_t slot) {
        if (device_manager_ != nullptr) device_manager_->OnGuestEjected(slot);
      });
  RETURN_IF_ERROR(
      machine_->pio().Insert(hotplug_slots_, kPortPciHotplug, pci::HotplugSlots::kSize));
  RETURN_IF_ERROR(machine_->pio().Insert(std::make_shared<devices::AcpiSleepControl>([this] {
                                           RequestExit(ExitReason::kPowerOff, "guest powered off");
                                         }),
                                         kPortAcpiSleep, 2));
  if (config_.debug_exit) {
    RETURN_IF_ERROR(machine_->pio().Insert(
        std::make_shared<devices::DebugExit>([this](uint32_t v) {
          RequestExit(ExitReason::kDebugExit,
                      absl::StrCat("the guest wrote ", Hex(v), " to the debug-exit port"), v);
        }),
        kPortDebugExit, devices::DebugExit::kSize));
  }
  // The boot timer also feeds the control plane's boot time and guest-boot-complete event.
  if (config_.boot_timer || controller_ != nullptr) {
    RETURN_IF_ERROR(machine_->pio().Insert(
        std::make_shared<devices::BootTimer>(
            start_,
            [this](absl::Duration d) {
              if (config_.boot_timer) {
                LogInfo("guest boot time: ", absl::ToInt64Milliseconds(d), " ms since vmm started");
              }
              if (controller_ != nullptr) {
                loop_->Post([this, d] { controller_->OnBootComplete(d); });
              }
            }),
        kPortBootTimer, 1));
  }
  std::vector<std::string> platform_ids;
  for (const DeviceSummary& d : PlatformDevices()) platform_ids.push_back(d.id);
  device_manager_ = std::make_unique<DeviceManager>(
      *machine_, *hotplug_slots_,
      DeviceManagerOptions{
          .post = [this](std::function<void()> fn) { return loop_->Post(std::move(fn)); },
          .on_removed =
              [this](const DeviceSummary& gone) {
                // On the loop, after the AddDevice that may be publishing this device's ADDED.
                if (controller_ != nullptr) {
                  controller_->OnDeviceEvent(
                      {VmEvent::DeviceChanged::Type::kRemoved, gone, "guest ejected"});
                }
              },
          .platform_ids = std::move(platform_ids)});
  device_manager_->RegisterKind("vfio-pci", VfioPciKind(*machine_));
  device_manager_->RegisterKind("virtio-blk", VirtioBlkKind(*machine_));
  device_manager_->RegisterKind("virtio-net", VirtioNetKind(*machine_));
  device_manager_->RegisterKind("virtio-vsock", VirtioVsockKind(*machine_));
  return absl::OkStatus();
}

absl::Status Vmm::SetUpPassthrough() {
  // Disks first: with nothing else in the way they take the lowest slots, so their order on the
  // command line is the guest's (vda, vdb, ...).
  for (const DiskConfig& dc : config_.disks) {
    absl::StatusOr<DeviceSummary> d = device_manager_->Add({.id = dc.id,
                                                            .kind = "virtio-blk",
                                                            .disk_path = dc.path,
                                                            .read_only = dc.read_only,
                                                            .queues = dc.queues,
                                                            .engine = dc.engine},
                                                           /*hotplug=*/false);
    if (!d.ok()) {
      return Prefixed(d.status(), "--disk ", dc.id, " (", dc.path, ")");
    }
  }
  for (const NetConfig& nc : config_.nets) {
    absl::StatusOr<DeviceSummary> d = device_manager_->Add({.id = nc.id,
                                                            .kind = "virtio-net",
                                                            .tap = nc.tap,
                                                            .tap_fds = nc.fds,
                                                            .mac = nc.mac,
                                                            .queue_pairs = nc.queue_pairs,
                                                            .vhost = nc.vhost,
                                                            .net_limits = nc.limits},
                                                           /*hotplug=*/false);
    if (!d.ok()) return Prefixed(d.status(), "--net ", nc.id);
  }
  if (config_.vsock) {
    absl::StatusOr<DeviceSummary> d = device_manager_->Add(
        {.id = config_.vsock->id, .kind = "virtio-vsock", .vsock_cid = config_.vsock->cid},
        /*hotplug=*/false);
    if (!d.ok()) return Prefixed(d.status(), "--vsock ", config_.vsock->id);
  }
  for (const PassthroughConfig& pc : config_.devices) {
    absl::StatusOr<DeviceSummary> d =
        device_manager_->Add({.id = pc.id, .host_bdf = pc.host_bdf, .slot = std::nullopt},
                             /*hotplug=*/false);
    if (!d.ok()) {
      return absl::Status(
          d.status().code(),
          absl::StrCat("--device ", pc.id, " (host ", pc.host_bdf, "): ", d.status().message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<BootEntry> Vmm::LoadLinuxKernel(absl::Span<const uint8_t> kernel,
                                               absl::Span<const uint8_t> initrd,
                                               GuestAddress rsdp) {
  GuestMemory& memory = machine_->memory();
  // 64bit and pvh take a bzImage's kernel out of it here, so the guest runs no decompressor.
  std::vector<uint8_t> vmlinux;
  loader::LinuxBootConfig boot{.kernel = kernel,
                               .initrd = initrd,
                               .cmdline = config_.cmdline,
                               .e820 = E820Map(config_.memory_bytes),
                               .rsdp = rsdp,
                               .boot_params_address = kBootParams,
                               .cmdline_address = kCmdline};
  const bool bzimage = loader::BzImagePayload(kernel).ok();
  if (config_.kernel_entry != KernelEntry::kAsIs && bzimage) {
    ASSIGN_OR_RETURN(vmlinux, loader::DecompressBzImage(kernel, config_.memory_bytes));
    boot.kernel = vmlinux;
    boot.setup_header_from = kernel;
  } else if (config_.kernel_entry == KernelEntry::k64Bit) {
    return absl::InvalidArgumentError(
        "--kernel_entry=64bit: the kernel is not a bzImage (an ELF vmlinux boots as-is through "
        "its 64-bit entry)");
  }
  ASSIGN_OR_RETURN(loader::LinuxBootInfo info, loader::LoadLinux(memory, boot));
  if (config_.kernel_entry != KernelEntry::kPvh) {
    return BootEntry{.entry = info.entry, .boot_info = info.boot_params};
  }
  if (!info.pvh_entry) {
    return absl::InvalidArgumentError(
        "--kernel_entry=pvh: the kernel has no PVH entry (an ELF note built with CONFIG_PVH)");
  }
  loader::PvhConfig pvh{.start_info = kPvhStartInfo,
                        .cmdline = kCmdline,
                        .initrd = info.initrd,
                        .initrd_size = initrd.size(),
                        .rsdp = rsdp,
                        .e820 = std::move(boot.e820)};  // LoadLinux is done with it.
  RETURN_IF_ERROR(loader::WritePvhStartInfo(memory, pvh));
  return BootEntry{
      .protocol = BootEntry::Protocol::kPvh, .entry = *info.pvh_entry, .boot_info = kPvhStartInfo};
}

absl::Status Vmm::SetUpVcpus(const BootEntry& boot) {
  ASSIGN_OR_RETURN(std::vector<std::unique_ptr<kvm::Vcpu>> created,
                   CreateBootVcpus(*machine_, config_.cpus, boot));
  vcpus_ = std::make_unique<VcpuSet>(
      std::move(created),
      [this](kvm::Vcpu& vcpu, const kvm::VcpuExit& exit) { HandleExit(vcpu, exit); },
      [this](kvm::Vcpu&, const absl::Status& s) {
        RequestExit(ExitReason::kError, std::string(s.message()));
      },
      [this](kvm::Vcpu& vcpu) {
        if (!config_.boot_timer || vcpu.id() != 0) return;
        const absl::Time now = absl::Now();
        loop_->Post([this, now] { LogBootPhases(now); });
      });
  return absl::OkStatus();
}

void Vmm::LogBootPhases(absl::Time first_entry) {
  auto ms = [this](absl::Time t) {
    return absl::StrFormat("%.1f", absl::ToDoubleMilliseconds(t - start_));
  };
  LogInfo("boot phases, ms since main: KVM and RAM ", ms(phases_.machine), ", kernel loaded ",
          ms(phases_.loaded), ", devices and vCPUs ", ms(phases_.built), ", first vCPU entry ",
          ms(first_entry));
}

void Vmm::RequestExit(ExitReason reason, const std::string& detail, uint32_t debug_exit_value) {
  {
    MutexLock lock(exit_mu_);
    if (exit_reason_ != ExitReason::kNone) return;
    exit_reason_ = reason;
    exit_detail_ = detail;
    debug_exit_value_ = debug_exit_value;
  }
  (void)exit_event_->Write(1);
}

void Vmm::HandleExit(kvm::Vcpu& vcpu, const kvm::VcpuExit& exit) {
  switch (DispatchExit(exit, machine_->pio(), machine_->mmio(), machine_->ioapic())) {
    case ExitAction::kContinue:
      return;
    case ExitAction::kTripleFault:
      RequestExit(ExitReason::kTripleFault,
                  absl::StrCat("vCPU ", vcpu.id(), " triple fault: ", DescribeRegisters(vcpu)));
      return;
    case ExitAction::kReset:
      RequestExit(ExitReason::kReset, "guest reset (system event)");
      return;
    case ExitAction::kPowerOff:
      RequestExit(ExitReason::kPowerOff, "guest shut down (system event)");
      return;
    case ExitAction::kError:
      // A system event of another type (a crash) has no registers worth printing.
      RequestExit(ExitReason::kError,
                  std::holds_alternative<kvm::exit::SystemEvent>(exit)
                      ? absl::StrCat("vCPU ", vcpu.id(), ": ", kvm::DescribeExit(exit))
                      : absl::StrCat("vCPU ", vcpu.id(), ": ", kvm::DescribeExit(exit), "; ",
                                     DescribeRegisters(vcpu)));
      return;
  }
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
      MutexLock lock(exit_mu_);
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
  RtcTick();
  return absl::OkStatus();
}

void Vmm::RtcTick() {
  // The first call only schedules; then once a second, just after the host clock's second
  // changes, which is when the RTC's time registers do.
  static constexpr absl::Duration kSecond = absl::Seconds(1);
  const absl::Time now = absl::Now();
  if (rtc_ != nullptr && loop_ != nullptr) {
    if (rtc_started_) rtc_->Tick();
    rtc_started_ = true;
    const absl::Duration into = now - absl::FromUnixSeconds(absl::ToUnixSeconds(now));
    loop_->RunOnLoopAfter(kSecond - into + absl::Milliseconds(1), [this] { RtcTick(); });
  }
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

  phases_.built = absl::Now();
  vcpus_->Start();
  if (absl::Status s = WatchHost(); !s.ok()) {
    RequestExit(ExitReason::kError, absl::StrCat("event loop setup: ", s.message()));
  } else {
    // Confined last, once the VM is built and its vCPU threads (each confined as it starts) are
    // running: from here this thread handles only the loop's events and the control plane's
    // work, then the teardown.
    ThreadStarted("event-loop");
    if (controller_ != nullptr) loop_->Post([this] { controller_->OnStarted(); });
    loop_->Run();
  }
  loop_->Close();
  vcpus_->Stop();
  if (console_out_ != nullptr) {
    // What the guest wrote last (a panic, its farewell), unless the reader is stuck.
    console_out_->Drain(absl::Seconds(1));
    if (console_out_->dropped() > 0) {
      LogWarning("vmm: ", console_out_->dropped(),
                 " bytes of console output were dropped (the reader did not keep up)");
    }
  }
  if (tty) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved);

  MutexLock lock(exit_mu_);
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
    case ExitReason::kDebugExit:
      LogInfo("vmm: ", exit_detail_);
      return static_cast<int>(((debug_exit_value_ << 1) | 1) & 0xff);
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

absl::Status Vmm::PauseVcpus() { return vcpus_->Pause(absl::Seconds(5)); }

absl::Status Vmm::ResumeVcpus() {
  vcpus_->Resume();
  return absl::OkStatus();
}

absl::Status Vmm::RequestGuestPowerOff() {
  // A press of the ACPI power button (GED interrupt -> _EVT -> Notify(PWRB, 0x80)); what the
  // guest does with it is up to the guest (acpid, systemd-logind, or nothing).
  acpi_events_->PressPowerButton();
  return absl::OkStatus();
}

void Vmm::Stop(const std::string& reason) { RequestExit(ExitReason::kApiShutdown, reason); }

absl::StatusOr<DeviceSummary> Vmm::AddDevice(const AddDeviceSpec& spec) {
  return device_manager_->Add(spec, /*hotplug=*/true);
}

absl::StatusOr<DeviceSummary> Vmm::BeginRemoveDevice(const std::string& id) {
  return device_manager_->BeginRemove(id);
}

bool Vmm::CancelRemoveDevice(const std::string& id) { return device_manager_->CancelRemove(id); }

std::vector<DeviceSummary> Vmm::PlatformDevices() const {
  auto platform = [](std::string id, std::string description, std::string bdf = "") {
    return DeviceSummary{std::move(id),
                         bdf.empty() ? DeviceSummary::Kind::kPlatform : DeviceSummary::Kind::kPci,
                         std::move(bdf),
                         "",
                         std::move(description),
                         std::nullopt,
                         std::nullopt,
                         std::nullopt,
                         std::nullopt};
  };
  std::vector<DeviceSummary> devices = {
      platform("com1", "16550A UART, I/O 0x3f8, IRQ 4"),
      platform("i8042", "keyboard controller (reset line), I/O 0x60/0x64"),
      platform("rtc", "CMOS RTC, I/O 0x70, IRQ 8 (update and alarm interrupts)"),
      platform("acpi-sleep", "ACPI sleep control/status registers"),
      platform("acpi-events",
               "ACPI power button and PCI hotplug (generic event device, GSI 5, I/O 0xa00)"),
      platform("pci-host", "PCI host bridge (0xcf8 and ECAM)", "0000:00:00.0"),
  };
  if (config_.boot_timer || controller_ != nullptr) {
    devices.push_back(platform("boot-timer", "boot-complete port 0x440"));
  }
  if (config_.debug_exit) {
    devices.push_back(platform("debug-exit", "debug-exit port 0xf4 (ends vmm with (V << 1) | 1)"));
  }
  if (config_.iommu) {
    devices.push_back(platform(
        "iommu",
        absl::StrCat("Intel VT-d DMA ",
                     config_.split_irqchip ? "and interrupt remapping" : "remapping",
                     config_.iommu_caching_mode ? " (caching mode)" : "", " at 0xfed90000")));
  }
  return devices;
}

Resources Vmm::CountResources() const {
  Resources r;
  device_manager_->CountResources(r);
  r.msi_routes = machine_->msi_route_count();
  r.memory_listeners = machine_->memory_listener_count();
  r.kvm_memory_slots = machine_->vm().slot_count();
  // Arena chunks in use plus chunks malloc mmapped on their own.
  const struct mallinfo2 heap = ::mallinfo2();
  r.heap_in_use_bytes = heap.uordblks + heap.hblkhd;
  r.open_fds = OpenFdCount();
  r.threads = ThreadCount();
  return r;
}

VmStatus Vmm::Describe() const {
  VmStatus s;
  s.config = config_;
  s.create_time = start_;
  s.vcpu_tids = vcpus_ != nullptr ? vcpus_->tids() : std::vector<int64_t>(config_.cpus, 0);
  s.devices = PlatformDevices();
  for (DeviceSummary& d : device_manager_->List()) s.devices.push_back(std::move(d));
  s.resources = CountResources();
  return s;
}

}  // namespace vmmkit::vmm
