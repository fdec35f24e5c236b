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

}  // namespace
}  // namespace vmmkit::devices
