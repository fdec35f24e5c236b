// Fuzzes the small PC devices of devices/legacy.h as a guest drives them, one target per device
// (LEGACY_FUZZ_DEVICE selects it at build time): the i8042, the CMOS RTC (with its update cycle
// ticking at any time and the clock at any instant), the ACPI sleep control and the boot timer.
// Checked: nothing crashes; the i8042 resets only on its reset command, the sleep register powers
// off only on S5 with SLP_EN, the boot timer reports at most once, and the RTC raises its
// interrupt only with an enabled flag pending (status C read back with IRQF).
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/time/time.h"
#include "devices/legacy.h"
#include "devices/testing/fuzz_access.h"

namespace vmmkit::devices {
namespace {

void Run(const uint8_t* data, size_t size) {
  fuzzing::FuzzInput in(data, size);
#if LEGACY_FUZZ_DEVICE == 0
  int resets = 0;
  I8042 kbd([&] { ++resets; });
  for (int ops = 0; !in.done() && ops < 1024; ++ops) {
    const int before = resets;
    const uint8_t how = in.Take<uint8_t>();
    const uint64_t v = in.Take<uint8_t>();
    const uint64_t off = how % 6;
    uint8_t b = static_cast<uint8_t>(v);
    if (how & 0x80) {
      kbd.Write(off, absl::MakeConstSpan(&b, 1));
      fuzzing::Require(resets == before || (off == 4 && b == 0xfe),
                       "a reset without the reset command");
    } else {
      kbd.Read(off, absl::MakeSpan(&b, 1));
    }
  }
#elif LEGACY_FUZZ_DEVICE == 1
  absl::Time now = absl::FromUnixSeconds(1700000000);
  int irqs = 0;
  CmosRtc rtc([&now] { return now; }, [&] { ++irqs; });
  for (int ops = 0; !in.done() && ops < 1024; ++ops) {
    switch (in.Take<uint8_t>() % 4) {
      case 0:
        rtc.Tick();
        break;
      case 1:
        now += absl::Seconds(in.Take<uint16_t>());
        break;
      default:
        (void)testing::FuzzAccess(in, rtc, 2);
        break;
    }
  }
  if (irqs > 0) {
    // The last interrupt's flags are still there unless the guest read status C since.
    uint8_t index = 0x0c, c = 0;
    rtc.Write(0, absl::MakeConstSpan(&index, 1));
    rtc.Read(1, absl::MakeSpan(&c, 1));
    fuzzing::Require(c == 0 || (c & 0x80) || (c & 0x70), "status C holds garbage");
  }
#elif LEGACY_FUZZ_DEVICE == 2
  int offs = 0;
  AcpiSleepControl pm([&] { ++offs; });
  for (int ops = 0; !in.done() && ops < 1024; ++ops) {
    const int before = offs;
    const uint8_t off = in.Take<uint8_t>() % 3;
    uint8_t b = in.Take<uint8_t>();
    pm.Write(off, absl::MakeConstSpan(&b, 1));
    fuzzing::Require(offs == before || (off == 0 && (b & 0x20) && ((b >> 2) & 7) == 5),
                     "a power-off without S5 and SLP_EN");
    (void)testing::FuzzAccess(in, pm, 2);
  }
#else
  int reports = 0;
  BootTimer timer(absl::Now(), [&](absl::Duration) { ++reports; });
  for (int ops = 0; !in.done() && ops < 1024; ++ops) (void)testing::FuzzAccess(in, timer, 1);
  fuzzing::Require(reports <= 1, "the boot time reported twice");
#endif
}

}  // namespace
}  // namespace vmmkit::devices

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::devices::Run(data, size);
  return 0;
}
