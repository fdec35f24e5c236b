// Fuzzes a vCPU exit from the kvm_run mapping to the devices, as a vCPU thread handles it: a
// kvm_run area of any size KVM could map (struct kvm_run plus up to two pages), with every field
// the guest or a broken kernel could choose (exit reason, I/O direction, size, port, count and
// data offset; MMIO address, length and bytes; system event type; EOI vector), decoded by
// kvm::DecodeExit and dispatched by DispatchExit to vmm's platform devices at their ports (COM1,
// i8042, CMOS RTC, ACPI sleep and event registers, PCI hotplug slots, the boot timer) and a real
// IOAPIC on MMIO. Checked against a model: decoding fails exactly for the malformed exits; every
// span lies in the exit's own bytes (ASan sees the area's exact end); an unclaimed read is all
// ones; the action matches the exit.
#include <linux/kvm.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "devices/acpi_events.h"
#include "devices/bus.h"
#include "devices/legacy.h"
#include "devices/serial.h"
#include "irq/ioapic.h"
#include "kvm/vcpu_exit.h"
#include "pci/hotplug_slots.h"
#include "tools/testing/fuzz_input.h"
#include "vmm/exit_dispatch.h"
#include "vmm/layout.h"

namespace vmmkit::vmm {
namespace {

using fuzzing::Require;

class CountingSink : public irq::IoapicSink {
 public:
  absl::Status SetRoute(uint32_t, std::optional<irq::MsiMessage>) override {
    return absl::OkStatus();
  }
  absl::Status Raise(uint32_t) override {
    ++raised;
    return absl::OkStatus();
  }
  uint64_t raised = 0;
};

// vmm's port-I/O and MMIO devices, wired as Vmm wires them (interrupts and outputs counted).
struct Platform {
  struct Port {
    std::shared_ptr<devices::BusDevice> device;
    uint16_t base, size;
  };
  Platform() {
    ports = {
        {serial, kPortCom1, 8},
        {std::make_shared<devices::I8042>([this] { ++resets; }), kPortI8042, 5},
        {std::make_shared<devices::CmosRtc>(), kPortCmos, 2},
        {std::make_shared<devices::AcpiSleepControl>([this] { ++power_offs; }), kPortAcpiSleep, 2},
        {std::make_shared<devices::AcpiEvents>([this] { ++sci; }), kPortAcpiEvents,
         devices::AcpiEvents::kSize},
        {std::make_shared<pci::HotplugSlots>([this] { ++sci; }, [this](uint8_t) { ++ejects; }),
         kPortPciHotplug, pci::HotplugSlots::kSize},
        {std::make_shared<devices::BootTimer>(absl::Now(), [](absl::Duration) {}), kPortBootTimer,
         1},
        {std::make_shared<devices::DebugExit>([this](uint32_t) { ++debug_exits; }), kPortDebugExit,
         devices::DebugExit::kSize},
    };
    for (const Port& p : ports) {
      Require(pio.Insert(p.device, p.base, p.size).ok(), "platform setup failed");
    }
    Require(mmio.Insert(ioapic, kIoapicAddress, irq::Ioapic::kSize).ok(), "platform setup failed");
  }
  // Whether a device covers [port, port + size): the bus's rule, modelled.
  bool Claims(uint16_t port, uint8_t size) const {
    for (const Port& p : ports) {
      if (port >= p.base && uint32_t{port} + size <= uint32_t{p.base} + p.size) return true;
    }
    return false;
  }
  CountingSink sink;
  devices::Bus pio{"pio"}, mmio{"mmio"};
  std::shared_ptr<devices::Serial16550> serial = std::make_shared<devices::Serial16550>(
      [] {}, [this](absl::Span<const uint8_t> bytes) { output += bytes.size(); });
  std::shared_ptr<irq::Ioapic> ioapic = std::make_shared<irq::Ioapic>(sink);
  std::vector<Port> ports;
  uint64_t resets = 0, power_offs = 0, sci = 0, ejects = 0, output = 0, debug_exits = 0;
};

// Ports and addresses worth hitting: the devices' own, their edges, and anything.
uint16_t TakePort(fuzzing::FuzzInput& in) {
  static constexpr uint16_t kPorts[] = {
      kPortCom1,     kPortCom1 + 5,  kPortI8042,      kPortI8042 + 4,      kPortCmos,
      kPortCmos + 1, kPortAcpiSleep, kPortAcpiEvents, kPortAcpiEvents + 3, kPortBootTimer,
      kPortCom1 + 7, kPortDebugExit, 0xffff};
  const uint8_t pick = in.Take<uint8_t>();
  if (pick < 0xc0) return static_cast<uint16_t>(kPorts[pick % std::size(kPorts)] + (pick >> 6));
  return in.Take<uint16_t>();
}

void Run(const uint8_t* data, size_t size) {
  fuzzing::FuzzInput in(data, size);
  // KVM maps struct kvm_run and, after it, the page(s) its I/O data uses.
  const size_t run_size = sizeof(kvm_run) + in.Take<uint16_t>() % (2 * 4096 + 1);
  // Exactly run_size bytes on the heap, so that ASan sees a read or write past the mapping's end.
  std::unique_ptr<uint8_t[]> area(new uint8_t[run_size]);
  std::memset(area.get(), in.Take<uint8_t>(), run_size);
  kvm_run& run = *reinterpret_cast<kvm_run*>(area.get());
  auto inside = [&](const uint8_t* p, size_t n) {
    return p >= area.get() && n <= run_size &&
           p - area.get() <= static_cast<ptrdiff_t>(run_size - n);
  };
  Platform platform;

  for (int exits = 0; !in.done() && exits < 32; ++exits) {
    static constexpr uint32_t kReasons[] = {
        KVM_EXIT_IO,         KVM_EXIT_IO,           KVM_EXIT_MMIO,
        KVM_EXIT_MMIO,       KVM_EXIT_HLT,          KVM_EXIT_SHUTDOWN,
        KVM_EXIT_INTR,       KVM_EXIT_SYSTEM_EVENT, KVM_EXIT_INTERNAL_ERROR,
        KVM_EXIT_FAIL_ENTRY, KVM_EXIT_IOAPIC_EOI};
    const uint8_t pick = in.Take<uint8_t>();
    run.exit_reason = pick < 0xf0 ? kReasons[pick % std::size(kReasons)] : in.Take<uint32_t>();
    bool valid = true;
    switch (run.exit_reason) {
      case KVM_EXIT_IO: {
        const uint8_t shape = in.Take<uint8_t>();
        run.io.direction = (shape & 1) ? KVM_EXIT_IO_OUT : KVM_EXIT_IO_IN;
        run.io.size =
            (shape & 0x80) ? in.Take<uint8_t>() : static_cast<uint8_t>(1 << ((shape >> 1) % 3));
        run.io.port = TakePort(in);
        run.io.count = (shape & 0x40) ? in.Take<uint32_t>() : 1u + (shape >> 3) % 8;
        // KVM's data offset is one page; the fuzzer may move it anywhere.
        run.io.data_offset = (shape & 0x20) ? in.Take<uint64_t>() : 4096 + in.Take<uint8_t>();
        // The OUT data (past struct kvm_run: the exit's own fields stay as set).
        for (int i = 0; i < 8; ++i) {
          const uint64_t at = run.io.data_offset + static_cast<uint64_t>(i);
          if (at >= sizeof(kvm_run) && at < run_size) area[at] = in.Take<uint8_t>();
        }
        const uint64_t len = uint64_t{run.io.size} * run.io.count;
        valid = (run.io.size == 1 || run.io.size == 2 || run.io.size == 4) && run.io.count > 0 &&
                run.io.data_offset <= run_size && len <= run_size - run.io.data_offset;
        break;
      }
      case KVM_EXIT_MMIO: {
        const uint8_t shape = in.Take<uint8_t>();
        run.mmio.is_write = shape & 1;
        run.mmio.len = (shape & 0x80) ? in.Take<uint32_t>() : 1u + (shape >> 1) % 8;
        run.mmio.phys_addr =
            (shape & 0x40) ? in.Take<uint64_t>() : kIoapicAddress + (in.Take<uint8_t>() & 0x7f);
        const uint64_t value = in.Take<uint64_t>();
        std::memcpy(run.mmio.data, &value, sizeof(value));
        valid = run.mmio.len >= 1 && run.mmio.len <= 8;
        break;
      }
      case KVM_EXIT_SYSTEM_EVENT:
        run.system_event.type = in.Take<uint8_t>() % 6;
        break;
      case KVM_EXIT_IOAPIC_EOI:
        run.eoi.vector = in.Take<uint8_t>();
        break;
      default:
        break;
    }

    absl::StatusOr<kvm::VcpuExit> exit = kvm::DecodeExit(run, run_size, 0);
    Require(exit.ok() == valid, "decoding disagrees with the model of a well-formed exit");
    if (!exit.ok()) continue;
    (void)kvm::DescribeExit(*exit);
    // The exit as decoded: an IN's data may overlap kvm_run's own fields (KVM's never does; the
    // decoder only requires it to lie in the mapping), so dispatch can change them.
    const uint32_t reason = run.exit_reason, event_type = run.system_event.type;

    // A read no device claims must come back as all ones: mark the bytes first, to tell.
    bool unclaimed_read = false;
    if (const auto* io = std::get_if<kvm::exit::IoIn>(&*exit)) {
      Require(inside(io->data.data(), io->data.size()), "I/O data outside the kvm_run area");
      unclaimed_read = !platform.Claims(io->port, io->size);
      std::memset(io->data.data(), 0x5a, io->data.size());
    } else if (const auto* out = std::get_if<kvm::exit::IoOut>(&*exit)) {
      Require(inside(out->data.data(), out->data.size()), "I/O data outside the kvm_run area");
    } else if (const auto* rd = std::get_if<kvm::exit::MmioRead>(&*exit)) {
      Require(rd->data.data() == run.mmio.data && rd->data.size() == run.mmio.len,
              "MMIO data is not the exit's own bytes");
    } else if (const auto* wr = std::get_if<kvm::exit::MmioWrite>(&*exit)) {
      Require(wr->data.data() == run.mmio.data && wr->data.size() == run.mmio.len,
              "MMIO data is not the exit's own bytes");
    }

    const ExitAction action =
        DispatchExit(*exit, platform.pio, platform.mmio, platform.ioapic.get());

    if (unclaimed_read) {
      for (uint8_t b : std::get<kvm::exit::IoIn>(*exit).data) {
        Require(b == 0xff, "an unclaimed port read is not all ones");
      }
    }
    ExitAction expected = ExitAction::kContinue;
    switch (reason) {
      case KVM_EXIT_IO:
      case KVM_EXIT_MMIO:
      case KVM_EXIT_HLT:
      case KVM_EXIT_INTR:
      case KVM_EXIT_IOAPIC_EOI:
        break;
      case KVM_EXIT_SHUTDOWN:
        expected = ExitAction::kTripleFault;
        break;
      case KVM_EXIT_SYSTEM_EVENT:
        expected = event_type == KVM_SYSTEM_EVENT_RESET      ? ExitAction::kReset
                   : event_type == KVM_SYSTEM_EVENT_SHUTDOWN ? ExitAction::kPowerOff
                                                             : ExitAction::kError;
        break;
      default:
        expected = ExitAction::kError;
        break;
    }
    Require(action == expected, "the action does not match the exit");
  }
}

}  // namespace
}  // namespace vmmkit::vmm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::vmm::Run(data, size);
  return 0;
}
