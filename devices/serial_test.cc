#include "devices/serial.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::devices {
namespace {

class SerialTest : public ::testing::Test {
 protected:
  uint8_t In(uint64_t reg) {
    uint8_t v;
    uart_.Read(reg, absl::MakeSpan(&v, 1));
    return v;
  }
  void Out(uint64_t reg, uint8_t v) { uart_.Write(reg, absl::MakeSpan(&v, 1)); }

  int interrupts_ = 0;
  std::string output_;
  Serial16550 uart_{[this] { ++interrupts_; },
                    [this](absl::Span<const uint8_t> b) { output_.append(b.begin(), b.end()); }};
};

TEST_F(SerialTest, TransmitsImmediately) {
  for (char c : std::string("hi\n")) Out(0, static_cast<uint8_t>(c));
  EXPECT_EQ(output_, "hi\n");
  EXPECT_EQ(In(5) & 0x60, 0x60) << "THR empty and transmitter empty";
}

TEST_F(SerialTest, ReceivesThroughTheFifoWithInterrupts) {
  Out(1, 0x01);  // IER: received-data interrupt.
  EXPECT_EQ(In(2) & 0x0f, 0x01) << "nothing pending";
  EXPECT_EQ(uart_.QueueInput({'l', 's'}), 2u);
  EXPECT_EQ(interrupts_, 1);
  EXPECT_EQ(In(5) & 0x01, 0x01) << "data ready";
  EXPECT_EQ(In(2) & 0x0f, 0x04) << "IIR: received data";
  EXPECT_EQ(In(0), 'l');
  EXPECT_EQ(In(0), 's');
  EXPECT_EQ(In(5) & 0x01, 0);
  EXPECT_EQ(In(2) & 0x0f, 0x01);
}

TEST_F(SerialTest, FifoIsBoundedAndInputSpaceTracksIt) {
  std::vector<uint8_t> lots(100, 'x');
  EXPECT_EQ(uart_.QueueInput(lots), Serial16550::kFifoSize);
  EXPECT_EQ(uart_.InputSpace(), 0u);
  EXPECT_EQ(uart_.QueueInput(lots), 0u);
  In(0);
  EXPECT_EQ(uart_.InputSpace(), 1u);
  Out(2, 0x02);  // FCR: clear the receive FIFO.
  EXPECT_EQ(uart_.InputSpace(), Serial16550::kFifoSize);
}

TEST_F(SerialTest, TransmitterEmptyInterruptIsRaisedAndAcknowledgedByIir) {
  Out(1, 0x02);  // Enabling THRE with an empty transmitter raises it at once.
  EXPECT_EQ(interrupts_, 1);
  EXPECT_EQ(In(2) & 0x0f, 0x02);
  EXPECT_EQ(In(2) & 0x0f, 0x01) << "reading IIR acknowledged it";
  Out(0, 'a');
  EXPECT_EQ(interrupts_, 2);
}

TEST_F(SerialTest, LoopbackPassesLinuxs8250SelfTest) {
  Out(4, 0x10 | 0x0a);  // MCR: loop, OUT2, RTS.
  EXPECT_EQ(In(6) & 0xf0, 0x90) << "DCD and CTS follow OUT2 and RTS";
  Out(0, 0x5a);
  EXPECT_EQ(output_, "") << "loopback does not transmit";
  EXPECT_EQ(In(0), 0x5a);
  Out(4, 0x08);
  EXPECT_EQ(In(6), 0xb0);
}

TEST_F(SerialTest, DivisorLatchAndScratch) {
  Out(3, 0x80);  // DLAB.
  Out(0, 0x01);
  Out(1, 0x00);
  EXPECT_EQ(In(0), 0x01);
  Out(3, 0x03);
  EXPECT_EQ(output_, "") << "divisor writes are not data";
  Out(7, 0xa5);
  EXPECT_EQ(In(7), 0xa5);
  EXPECT_EQ(In(2) & 0xc0, 0xc0) << "FIFO bits: a 16550A";
}

TEST_F(SerialTest, HostileAccessesAreHarmless) {
  uint8_t wide[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  uart_.Write(6, absl::MakeSpan(wide, 8));  // Runs past register 7: ignored beyond it.
  uint8_t out[8];
  uart_.Read(5, absl::MakeSpan(out, 8));
  EXPECT_EQ(out[3], 0xff) << "past the last register reads all-ones";
}

}  // namespace
}  // namespace vmmkit::devices
