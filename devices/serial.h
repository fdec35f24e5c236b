// File: devices/serial.h
// -----------------------------------------------------------------------------
// Serial16550 emulates a 16550A UART (8 registers at, conventionally, I/O port 0x3f8): enough of
// it that Linux's 8250 driver detects a 16550A, uses it as a console, takes input interrupts and
// passes its loopback self-test. Transmitted bytes go to an output callback at once (the transmit
// holding register is always empty); received bytes wait in a 64-byte FIFO.
//
// Interrupts are edge events for an irqfd on the UART's ISA IRQ: `interrupt` is called whenever
// a new interrupt condition (received data, transmitter empty) becomes pending and enabled.
//
//   auto uart = std::make_shared<Serial16550>(
//       [&] { (void)irq.Write(1); },                                  // IRQ 4 via irqfd
//       [](absl::Span<const uint8_t> b) { fwrite(b.data(), 1, b.size(), stdout); });
//   RETURN_IF_ERROR(pio_bus.Insert(uart, 0x3f8, 8));
//   uart->QueueInput(bytes_from_stdin);                               // event loop thread
//
// Thread-safety: all methods may be called from any thread (one internal mutex); the callbacks
// run with that mutex released.

#ifndef VMMKIT_DEVICES_SERIAL_H_
#define VMMKIT_DEVICES_SERIAL_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "base/mutex.h"
#include "devices/bus.h"

namespace vmmkit::devices {

class Serial16550 : public BusDevice {
 public:
  static constexpr size_t kFifoSize = 64;
  using InterruptFn = std::function<void()>;
  using OutputFn = std::function<void(absl::Span<const uint8_t>)>;

  Serial16550(InterruptFn interrupt, OutputFn output)
      : interrupt_(std::move(interrupt)), output_(std::move(output)) {}

  void Read(uint64_t offset, absl::Span<uint8_t> data) override;
  void Write(uint64_t offset, absl::Span<const uint8_t> data) override;

  // Adds host input to the receive FIFO; returns how many bytes fit (the rest are the caller's to
  // retry). Raises the receive interrupt if enabled.
  size_t QueueInput(absl::Span<const uint8_t> bytes);
  // Free space in the receive FIFO, so the event loop only reads what the guest can take.
  size_t InputSpace() const;

 private:
  uint8_t ReadRegister(uint64_t offset) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns whether an interrupt should be signalled; transmitted bytes are appended to `out`.
  bool WriteRegister(uint64_t offset, uint8_t value, std::vector<uint8_t>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool InterruptPendingLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const InterruptFn interrupt_;
  const OutputFn output_;
  mutable Mutex mu_;
  uint8_t ier_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t lcr_ ABSL_GUARDED_BY(mu_) = 0x03;
  uint8_t mcr_ ABSL_GUARDED_BY(mu_) = 0x08;
  uint8_t scr_ ABSL_GUARDED_BY(mu_) = 0;
  uint8_t dll_ ABSL_GUARDED_BY(mu_) = 0x0c;
  uint8_t dlh_ ABSL_GUARDED_BY(mu_) = 0;
  // The THRE interrupt condition, cleared by reading IIR.
  bool thr_empty_pending_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<uint8_t> rx_ ABSL_GUARDED_BY(mu_);
};

}  // namespace vmmkit::devices

#endif  // VMMKIT_DEVICES_SERIAL_H_
