#include "devices/serial.h"

#include <algorithm>

namespace vmmkit::devices {
namespace {

// Register offsets (DLAB = LCR bit 7 switches 0 and 1 to the divisor latch).
constexpr uint64_t kData = 0, kIer = 1, kIir = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6, kScr = 7;
constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kIerRda = 0x01, kIerThre = 0x02;
constexpr uint8_t kIirNone = 0x01, kIirThre = 0x02, kIirRda = 0x04, kIirFifo = 0xc0;
constexpr uint8_t kLsrDr = 0x01, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kMcrLoop = 0x10;
constexpr uint8_t kFcrClearRx = 0x02;
// With no modem attached the lines read as DCD, DSR and CTS asserted.
constexpr uint8_t kMsrDefault = 0xb0;

}  // namespace

bool Serial16550::InterruptPendingLocked() const {
  return ((ier_ & kIerRda) && !rx_.empty()) || ((ier_ & kIerThre) && thr_empty_pending_);
}

uint8_t Serial16550::ReadRegister(uint64_t offset) {
  switch (offset) {
    case kData:
      if (lcr_ & kLcrDlab) return dll_;
      if (rx_.empty()) return 0;
      {
        const uint8_t b = rx_.front();
        rx_.pop_front();
        return b;
      }
    case kIer:
      return (lcr_ & kLcrDlab) ? dlh_ : ier_;
    case kIir: {
      uint8_t iir = kIirNone;
      if ((ier_ & kIerRda) && !rx_.empty()) {
        iir = kIirRda;
      } else if ((ier_ & kIerThre) && thr_empty_pending_) {
        iir = kIirThre;
        thr_empty_pending_ = false;  // Reading IIR acknowledges THRE.
      }
      return iir | kIirFifo;
    }
    case kLcr:
      return lcr_;
    case kMcr:
      return mcr_;
    case kLsr:
      return kLsrThre | kLsrTemt | (rx_.empty() ? 0 : kLsrDr);
    case kMsr:
      if (mcr_ & kMcrLoop) {
        // Loopback: DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD.
        return static_cast<uint8_t>(((mcr_ & 0x01) << 5) | ((mcr_ & 0x02) << 3) |
                                    ((mcr_ & 0x04) << 4) | ((mcr_ & 0x08) << 4));
      }
      return kMsrDefault;
    case kScr:
      return scr_;
    default:
      return 0xff;
  }
}

bool Serial16550::WriteRegister(uint64_t offset, uint8_t value, std::vector<uint8_t>* out) {
  switch (offset) {
    case kData:
      if (lcr_ & kLcrDlab) {
        dll_ = value;
        return false;
      }
      if (mcr_ & kMcrLoop) {
        if (rx_.size() < kFifoSize) rx_.push_back(value);  // Loopback: transmit to ourselves.
      } else {
        out->push_back(value);  // Sent after the lock is released: output may block on the host.
      }
      thr_empty_pending_ = true;
      return InterruptPendingLocked();
    case kIer: {
      if (lcr_ & kLcrDlab) {
        dlh_ = value;
        return false;
      }
      const bool thre_enabled_now = (value & kIerThre) && !(ier_ & kIerThre);
      ier_ = value & 0x0f;
      // Enabling the THRE interrupt while the transmitter is empty raises it at once.
      if (thre_enabled_now) thr_empty_pending_ = true;
      return InterruptPendingLocked();
    }
    case kIir:  // FCR on write.
      if (value & kFcrClearRx) rx_.clear();
      return false;
    case kLcr:
      lcr_ = value;
      return false;
    case kMcr:
      mcr_ = value & 0x1f;
      return false;
    case kScr:
      scr_ = value;
      return false;
    default:  // LSR and MSR are read-only.
      return false;
  }
}

void Serial16550::Read(uint64_t offset, absl::Span<uint8_t> data) {
  MutexLock lock(mu_);
  // Registers are bytes; a wider access reads consecutive registers, as on an ISA bus.
  for (size_t i = 0; i < data.size(); ++i) data[i] = ReadRegister(offset + i);
}

void Serial16550::Write(uint64_t offset, absl::Span<const uint8_t> data) {
  bool raise = false;
  std::vector<uint8_t> out;
  {
    MutexLock lock(mu_);
    for (size_t i = 0; i < data.size(); ++i) raise |= WriteRegister(offset + i, data[i], &out);
  }
  if (!out.empty()) output_(out);
  if (raise) interrupt_();
}

size_t Serial16550::QueueInput(absl::Span<const uint8_t> bytes) {
  bool raise;
  size_t n;
  {
    MutexLock lock(mu_);
    const bool was_empty = rx_.empty();
    n = std::min(bytes.size(), kFifoSize - rx_.size());
    rx_.insert(rx_.end(), bytes.begin(), bytes.begin() + static_cast<long>(n));
    raise = n > 0 && was_empty && (ier_ & kIerRda);
  }
  if (raise) interrupt_();
  return n;
}

size_t Serial16550::InputSpace() const {
  MutexLock lock(mu_);
  return kFifoSize - rx_.size();
}

}  // namespace vmmkit::devices
