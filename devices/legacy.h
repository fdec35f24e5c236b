// File: devices/legacy.h
// -----------------------------------------------------------------------------
// Small PC platform devices a Linux guest expects or that let it talk to the VMM:
//   - I8042: the keyboard controller's reset line (command 0xFE on port 0x64 resets the machine;
//     it is also the ACPI reset register), with a controller that answers its probe sanely.
//   - CmosRtc: the MC146818 RTC/CMOS at ports 0x70/0x71, reporting the host's UTC time in BCD.
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
  // `now` is injectable for tests.
  explicit CmosRtc(std::function<absl::Time()> now = absl::Now) : now_(std::move(now)) {}
  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

 private:
  uint8_t Register(uint8_t index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const std::function<absl::Time()> now_;
  Mutex mu_;
  uint8_t index_ ABSL_GUARDED_BY(mu_) = 0;
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

}  // namespace vmmkit::devices

#endif  // VMMKIT_DEVICES_LEGACY_H_
