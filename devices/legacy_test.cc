#include "devices/legacy.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::devices {
namespace {

uint8_t In(BusDevice& d, uint64_t off) {
  uint8_t v;
  d.Read(off, absl::MakeSpan(&v, 1));
  return v;
}
void Out(BusDevice& d, uint64_t off, uint8_t v) { d.Write(off, absl::MakeSpan(&v, 1)); }

TEST(I8042Test, ResetCommandAndProbe) {
  int resets = 0;
  I8042 kbd([&] { ++resets; });
  EXPECT_EQ(In(kbd, 4) & 0x01, 0) << "output buffer empty";
  Out(kbd, 4, 0xaa);  // Self test.
  EXPECT_EQ(In(kbd, 4) & 0x01, 1);
  EXPECT_EQ(In(kbd, 0), 0x55);
  Out(kbd, 4, 0x60);  // Write control byte ...
  Out(kbd, 0, 0x47);
  Out(kbd, 4, 0x20);  // ... and read it back.
  EXPECT_EQ(In(kbd, 0), 0x47);
  EXPECT_EQ(resets, 0);
  Out(kbd, 4, 0xfe);
  EXPECT_EQ(resets, 1);
}

TEST(CmosRtcTest, ReportsTimeInBcd) {
  const absl::Time t =
      absl::FromCivil(absl::CivilSecond(2026, 11, 23, 14, 5, 59), absl::UTCTimeZone());
  CmosRtc rtc([t] { return t; });
  auto reg = [&](uint8_t i) {
    Out(rtc, 0, i | 0x80);  // With the NMI-mask bit set, as Linux does.
    return In(rtc, 1);
  };
  EXPECT_EQ(reg(0x00), 0x59);
  EXPECT_EQ(reg(0x02), 0x05);
  EXPECT_EQ(reg(0x04), 0x14);
  EXPECT_EQ(reg(0x07), 0x23);
  EXPECT_EQ(reg(0x08), 0x11);
  EXPECT_EQ(reg(0x09), 0x26);
  EXPECT_EQ(reg(0x32), 0x20);
  EXPECT_EQ(reg(0x0a) & 0x80, 0) << "no update in progress";
  EXPECT_EQ(reg(0x0d), 0x80);
  Out(rtc, 0, 0x40);
  Out(rtc, 1, 0x77);
  EXPECT_EQ(reg(0x40), 0x77) << "CMOS RAM";
  Out(rtc, 0, 0x00);
  Out(rtc, 1, 0x11);
  EXPECT_EQ(reg(0x00), 0x59) << "the time is read-only";
}

TEST(CmosRtcTest, UpdateAndAlarmInterruptsAreEdgesAcknowledgedByStatusC) {
  absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 12, 5, 6, 30, 10), absl::UTCTimeZone());
  int irqs = 0;
  CmosRtc rtc([&t] { return t; }, [&] { ++irqs; });
  auto reg = [&](uint8_t i) {
    Out(rtc, 0, i);
    return In(rtc, 1);
  };
  auto set = [&](uint8_t i, uint8_t v) {
    Out(rtc, 0, i);
    Out(rtc, 1, v);
  };
  rtc.Tick();  // Flags are set, but no interrupt is enabled.
  EXPECT_EQ(irqs, 0);
  EXPECT_EQ(reg(0x0c), 0x10) << "UF";
  EXPECT_EQ(reg(0x0c), 0x00) << "reading status C cleared it";
  set(0x0b, 0x02 | 0x10);  // UIE.
  rtc.Tick();
  EXPECT_EQ(irqs, 1);
  rtc.Tick();  // IRQF still set: the line has no new edge.
  EXPECT_EQ(irqs, 1);
  EXPECT_EQ(reg(0x0c), 0x90) << "IRQF | UF";
  rtc.Tick();
  EXPECT_EQ(irqs, 2);
  (void)reg(0x0c);
  // An alarm at 06:30:12 (BCD; minutes "don't care"), with AIE only.
  set(0x0b, 0x02 | 0x20);
  set(0x01, 0x12);
  set(0x03, 0xc0);
  set(0x05, 0x06);
  rtc.Tick();  // 06:30:10: no match; UF is set but not enabled.
  EXPECT_EQ(irqs, 2);
  t += absl::Seconds(2);
  (void)reg(0x0c);
  rtc.Tick();
  EXPECT_EQ(irqs, 3);
  EXPECT_EQ(reg(0x0c), 0xb0) << "IRQF | AF | UF";
  // Enabling an interrupt whose flag is already set raises it at once.
  set(0x0b, 0x02);
  rtc.Tick();
  set(0x0b, 0x02 | 0x10);
  EXPECT_EQ(irqs, 4);
  // SET holds the clock: no update cycle, no flags.
  (void)reg(0x0c);
  set(0x0b, 0x80 | 0x10);
  rtc.Tick();
  EXPECT_EQ(reg(0x0c), 0x00);
  EXPECT_EQ(irqs, 4);
  EXPECT_EQ(reg(0x0b), 0x80 | 0x10 | 0x02) << "always 24-hour";
  // Binary mode.
  set(0x0b, 0x02 | 0x04);
  EXPECT_EQ(reg(0x00), 12);
  EXPECT_EQ(reg(0x04), 6);
  EXPECT_EQ(reg(0x0a) & 0x80, 0);
  set(0x0a, 0xff);
  EXPECT_EQ(reg(0x0a), 0x7f) << "UIP is read-only";
}

TEST(AcpiSleepControlTest, OnlyS5WithSleepEnablePowersOff) {
  int offs = 0;
  AcpiSleepControl pm([&] { ++offs; });
  Out(pm, 0, 5 << 2);           // S5 without SLP_EN.
  Out(pm, 0, (3 << 2) | 0x20);  // S3.
  EXPECT_EQ(offs, 0);
  Out(pm, 0, (5 << 2) | 0x20);
  EXPECT_EQ(offs, 1);
  EXPECT_EQ(In(pm, 1), 0);
}

TEST(BootTimerTest, ReportsOnTheMagicValueOnly) {
  std::vector<absl::Duration> seen;
  BootTimer timer(absl::Now() - absl::Seconds(2), [&](absl::Duration d) { seen.push_back(d); });
  Out(timer, 0, 1);
  EXPECT_TRUE(seen.empty());
  Out(timer, 0, BootTimer::kBootCompleteMagic);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_GE(seen[0], absl::Seconds(2));
}

TEST(BootTimerTest, ReportsOncePerBoot) {
  int reports = 0;
  BootTimer timer(absl::Now(), [&](absl::Duration) { ++reports; });
  for (int i = 0; i < 5; ++i) Out(timer, 0, BootTimer::kBootCompleteMagic);
  EXPECT_EQ(reports, 1);
}

TEST(DebugExitTest, ReportsEachByteWordOrDwordWrittenAtItsPort) {
  std::vector<uint32_t> seen;
  DebugExit port([&](uint32_t v) { seen.push_back(v); });
  Out(port, 0, 0x21);
  const uint8_t word[] = {0x34, 0x12}, dword[] = {0x78, 0x56, 0x34, 0x12};
  port.Write(0, word);
  port.Write(0, dword);
  EXPECT_EQ(seen, (std::vector<uint32_t>{0x21, 0x1234, 0x12345678}));
  const uint8_t three[] = {1, 2, 3}, eight[8] = {1};
  port.Write(0, three);  // Not a width an OUT instruction has.
  port.Write(0, eight);
  Out(port, 2, 0x21);  // Not the register.
  EXPECT_EQ(seen.size(), 3u);
  EXPECT_EQ(In(port, 0), 0);
}

}  // namespace
}  // namespace vmmkit::devices
