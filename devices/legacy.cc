#include "devices/legacy.h"

#include <algorithm>

namespace vmmkit::devices {
namespace {

constexpr uint64_t kI8042Data = 0, kI8042Command = 4;
constexpr uint8_t kCmdReadControl = 0x20, kCmdWriteControl = 0x60, kCmdSelfTest = 0xaa;
constexpr uint8_t kCmdResetCpu = 0xfe;
constexpr uint8_t kStatusOutputFull = 0x01, kStatusSystemFlag = 0x04;

uint8_t Bcd(int v) { return static_cast<uint8_t>(((v / 10) << 4) | (v % 10)); }

constexpr uint8_t kRtcSet = 0x80, kRtcPie = 0x40, kRtcAie = 0x20, kRtcUie = 0x10, kRtcBinary = 0x04,
                  kRtc24Hour = 0x02;
constexpr uint8_t kRtcIrqf = 0x80, kRtcAf = 0x20, kRtcUf = 0x10;  // PF (0x40): never set.

}  // namespace

void I8042::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
  MutexLock lock(mu_);
  if (offset == kI8042Data && !data.empty()) {
    data[0] = pending_ >= 0 ? static_cast<uint8_t>(pending_) : 0;
    pending_ = -1;
  } else if (offset == kI8042Command && !data.empty()) {
    data[0] = kStatusSystemFlag | (pending_ >= 0 ? kStatusOutputFull : 0);
  }
}

void I8042::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (data.empty()) return;
  bool reset = false;
  {
    MutexLock lock(mu_);
    if (offset == kI8042Command) {
      write_control_next_ = false;
      switch (data[0]) {
        case kCmdReadControl:
          pending_ = control_;
          break;
        case kCmdWriteControl:
          write_control_next_ = true;
          break;
        case kCmdSelfTest:
          pending_ = 0x55;
          break;  // "Controller OK".
        case kCmdResetCpu:
          reset = true;
          break;
        default:
          break;  // Other commands have no effect here.
      }
    } else if (offset == kI8042Data && write_control_next_) {
      control_ = data[0];
      write_control_next_ = false;
    }
  }
  if (reset) reset_();
}

uint8_t CmosRtc::Register(uint8_t index) const {
  const absl::CivilSecond t = absl::ToCivilSecond(now_(), absl::UTCTimeZone());
  const bool binary = status_b_ & kRtcBinary;
  const auto encode = [binary](int v) { return binary ? static_cast<uint8_t>(v) : Bcd(v); };
  switch (index) {
    case 0x00:
      return encode(t.second());
    case 0x01:
      return alarm_[0];
    case 0x02:
      return encode(t.minute());
    case 0x03:
      return alarm_[1];
    case 0x04:
      return encode(t.hour());
    case 0x05:
      return alarm_[2];
    case 0x06:
      return encode(static_cast<int>(absl::GetWeekday(t)) % 7 + 1);
    case 0x07:
      return encode(t.day());
    case 0x08:
      return encode(t.month());
    case 0x09:
      return encode(static_cast<int>(t.year() % 100));
    case 0x32:
      return encode(static_cast<int>(t.year() / 100));
    case 0x0a:
      return status_a_;  // UIP clear: the time is always readable.
    case 0x0b:
      return status_b_;
    case 0x0c:
      return status_c_;
    case 0x0d:
      return 0x80;  // Status D: the battery (and so the time) is valid.
    default:
      return ram_[index & 0x7f];
  }
}

bool CmosRtc::UpdateIrqf() {
  const bool before = status_c_ & kRtcIrqf;
  const uint8_t enabled = (status_b_ & (kRtcPie | kRtcAie | kRtcUie)) & status_c_;
  if (enabled) status_c_ |= kRtcIrqf;
  return !before && enabled;
}

void CmosRtc::Tick() {
  bool raise = false;
  {
    MutexLock lock(mu_);
    if (status_b_ & kRtcSet) return;
    status_c_ |= kRtcUf;
    bool alarm = true;
    for (int i = 0; i < 3; ++i) {
      alarm = alarm && (alarm_[i] >= 0xc0 || alarm_[i] == Register(static_cast<uint8_t>(2 * i)));
    }
    if (alarm) status_c_ |= kRtcAf;
    raise = UpdateIrqf();
  }
  if (raise && irq_) irq_();
}

void CmosRtc::Read(uint64_t offset, absl::Span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0xff);
  if (offset != 1 || data.empty()) return;
  MutexLock lock(mu_);
  data[0] = Register(index_);
  if (index_ == 0x0c) status_c_ = 0;  // Reading status C acknowledges every flag.
}

void CmosRtc::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (data.empty()) return;
  bool raise = false;
  {
    MutexLock lock(mu_);
    if (offset == 0) {
      index_ = data[0] & 0x7f;  // Bit 7 is the NMI mask, not part of the index.
      return;
    }
    if (offset != 1) return;
    switch (index_) {
      case 0x01:
      case 0x03:
      case 0x05:
        alarm_[index_ / 2] = data[0];
        break;
      case 0x0a:
        status_a_ = data[0] & 0x7f;  // UIP is read-only.
        break;
      case 0x0b:
        // Always 24-hour mode: the hours register does not do 12-hour.
        status_b_ = data[0] | kRtc24Hour;
        raise = UpdateIrqf();  // Enabling an interrupt whose flag is set raises it.
        break;
      case 0x0c:
      case 0x0d:
        break;  // Read-only.
      default:
        // The time registers are read-only here: the host clock is the truth.
        if (index_ > 0x0d && index_ != 0x32) ram_[index_] = data[0];
        break;
    }
  }
  if (raise && irq_) irq_();
}

void AcpiSleepControl::Read(uint64_t, absl::Span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);  // Sleep status: nothing to report.
}

void AcpiSleepControl::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (offset != 0 || data.empty()) return;
  constexpr uint8_t kSlpEn = 1 << 5;
  const uint8_t slp_typ = (data[0] >> 2) & 0x7;
  if ((data[0] & kSlpEn) && slp_typ == 5) power_off_();  // S5, as the DSDT's _S5_ says.
}

void BootTimer::Read(uint64_t, absl::Span<uint8_t> data) { std::fill(data.begin(), data.end(), 0); }

void BootTimer::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (offset != 0 || data.empty() || data[0] != kBootCompleteMagic) return;
  if (!reported_.exchange(true)) on_boot_(absl::Now() - start_);
}

void DebugExit::Read(uint64_t, absl::Span<uint8_t> data) { std::fill(data.begin(), data.end(), 0); }

void DebugExit::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  if (offset != 0 || (data.size() != 1 && data.size() != 2 && data.size() != 4)) return;
  uint32_t value = 0;
  for (size_t i = 0; i < data.size(); ++i) value |= uint32_t{data[i]} << (8 * i);
  on_exit_(value);
}

}  // namespace vmmkit::devices
