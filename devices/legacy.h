// File: devices/legacy.h
// -----------------------------------------------------------------------------
// Small PC platform devices a Linux guest expects or that let it talk to the VMM:
//   - I8042: the keyboard controller's reset line (command 0xFE on port 0x64 resets the machine;
//     it is also the ACPI reset register), with a controller that answers its probe sanely.
//   - CmosRtc: the MC146818 RTC/CMOS at ports 0x70/0x71, reporting the host's UTC time (BCD or
//     binary, as status B says), with its update-ended and alarm interrupts (IRQ 8) when the VMM
//     calls Tick() at each second boundary; no periodic interrupt.
//   - AcpiSleepControl: the hardware-reduced ACPI sleep control/status registers; S5 = power off.
//   - BootTimer: a port the guest's init writes 123 to when it is up; the VMM logs the time since
//     its own start (Firecracker's boot timer).
//
//   auto i8042 = std::make_shared<I8042>([&] { vmm.RequestExit(ExitReason::kReset); });
//   RETURN_IF_ERROR(pio.Insert(i8042, 0x60, 5));   // 0x60 data ... 0x64 command/status

#ifndef VMMKIT_DEVICES_LEGACY_H_
#define VMMKIT_DEVICES_LEGACY_H_

#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/time/time.h"
#include "base/mutex.h"
#include "devices/bus.h"

namespace vmmkit::devices {

class I8042 : public BusDevice {
 public:
  explicit I8042(std::function<void()> reset) : reset_(std::move(reset)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  const std::function<void()> reset_;
  Mutex mu_;
  // Keyboard interrupt enabled.
  uint8_t control_ ABSL_GUARDED_BY(mu_) = 0x01;
  // Byte waiting in the output buffer, or -1.
  int pending_ ABSL_GUARDED_BY(mu_) = -1;
  bool write_control_next_ ABSL_GUARDED_BY(mu_) = false;
};

class CmosRtc : public BusDevice {
 public:
  // `now` is injectable for tests. `irq` raises IRQ 8 (an edge: called when status C's IRQF goes
  // from clear to set; the guest's read of status C clears it), without the device's lock.
  explicit CmosRtc(std::function<absl::Time()> now = absl::Now, std::function<void()> irq = nullptr)
      : now_(std::move(now)), irq_(std::move(irq)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;
  // The clock's update cycle, once a second: sets the update-ended flag, and the alarm flag when
  // the alarm registers match the time (0xc0-0xff in one: any value); raises IRQ 8 for the enabled
  // ones. Nothing while status B's SET bit holds the clock.
  void Tick();

 private:
  uint8_t Register(uint8_t index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether status C now holds an enabled flag it did not before (the IRQ's edge).
  bool UpdateIrqf() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::function<absl::Time()> now_;
  const std::function<void()> irq_;
  Mutex mu_;
  uint8_t index_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t status_a_ ABSL_GUARDED_BY(mu_) = 0x26;  // 32.768 kHz, 1024 Hz rate (no periodic IRQ).
  uint8_t status_b_ ABSL_GUARDED_BY(mu_) = 0x02;  // 24-hour, BCD, no interrupts enabled.
  uint8_t status_c_ ABSL_GUARDED_BY(mu_) = 0;     // IRQF, PF, AF, UF.
  uint8_t alarm_[3] ABSL_GUARDED_BY(mu_) = {};    // Seconds, minutes, hours.
  // General-purpose CMOS bytes.
  uint8_t ram_[128] ABSL_GUARDED_BY(mu_) = {};
};

class AcpiSleepControl : public BusDevice {
 public:
  explicit AcpiSleepControl(std::function<void()> power_off) : power_off_(std::move(power_off)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  const std::function<void()> power_off_;
};

class BootTimer : public BusDevice {
 public:
  static constexpr uint8_t kBootCompleteMagic = 123;
  // `on_boot` receives the time from `start` to the guest's first signal; later ones are ignored
  // (the guest's init may run the boot script again, or a hostile guest write it in a loop).
  BootTimer(absl::Time start, std::function<void(absl::Duration)> on_boot)
      : start_(start), on_boot_(std::move(on_boot)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  const absl::Time start_;
  const std::function<void(absl::Duration)> on_boot_;
  std::atomic<bool> reported_ = false;
};

// The debug-exit port, as QEMU's isa-debug-exit (what x86 unit-test kernels and small OSes use to
// end their VMM with a verdict): a write of 1, 2 or 4 bytes at offset 0 reports the value written
// (little-endian), on which the VMM ends with exit status (value << 1) | 1. Reads return 0.
class DebugExit : public BusDevice {
 public:
  static constexpr uint64_t kSize = 4;
  explicit DebugExit(std::function<void(uint32_t value)> on_exit) : on_exit_(std::move(on_exit)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  const std::function<void(uint32_t)> on_exit_;
};

}  // namespace vmmkit::devices

#endif  // VMMKIT_DEVICES_LEGACY_H_
