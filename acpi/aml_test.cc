#include "acpi/aml.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::acpi {
namespace {

using ::testing::ElementsAre;

TEST(AmlTest, IntegersUseTheShortestEncoding) {
  EXPECT_THAT(Integer(0), ElementsAre(0x00));
  EXPECT_THAT(Integer(1), ElementsAre(0x01));
  EXPECT_THAT(Integer(0x12), ElementsAre(0x0a, 0x12));
  EXPECT_THAT(Integer(0x1234), ElementsAre(0x0b, 0x34, 0x12));
  EXPECT_THAT(Integer(0x12345678), ElementsAre(0x0c, 0x78, 0x56, 0x34, 0x12));
  EXPECT_THAT(Integer(0x100000000), ElementsAre(0x0e, 0, 0, 0, 0, 1, 0, 0, 0));
  EXPECT_THAT(Integer(~uint64_t{0}), ElementsAre(0xff));
}

TEST(AmlTest, PkgLengthAtEveryEncodingBoundary) {
  EXPECT_THAT(PkgLength(0), ElementsAre(0x01));
  EXPECT_THAT(PkgLength(62), ElementsAre(0x3f));                // 63 total: one byte.
  EXPECT_THAT(PkgLength(63), ElementsAre(0x41, 0x04));          // 65 total: two bytes.
  EXPECT_THAT(PkgLength(4093), ElementsAre(0x4f, 0xff));        // 4095 total.
  EXPECT_THAT(PkgLength(4094), ElementsAre(0x81, 0x00, 0x01));  // 4097 total: three bytes.
}

TEST(AmlTest, EisaIdCompression) {
  // PNP0A08 compresses to 0x080ad041 (as ACPICA's EISAID() macro computes it).
  EXPECT_THAT(EisaId("PNP0A08"), ElementsAre(0x0c, 0x41, 0xd0, 0x0a, 0x08));
  EXPECT_THAT(EisaId("PNP0501"), ElementsAre(0x0c, 0x41, 0xd0, 0x05, 0x01));
}

TEST(AmlTest, NamesAndPaths) {
  EXPECT_THAT(NameString("_SB"), ElementsAre('_', 'S', 'B', '_'));
  EXPECT_THAT(NameString("\\_SB_.PCI0"),
              ElementsAre(0x5c, 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0'));
  EXPECT_THAT(NameString("A.B.C"),
              ElementsAre(0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_'));
}

TEST(AmlTest, StringsPackagesAndNames) {
  EXPECT_THAT(String("ok"), ElementsAre(0x0d, 'o', 'k', 0));
  EXPECT_THAT(Package({Integer(5), Integer(0)}), ElementsAre(0x12, 0x05, 0x02, 0x0a, 0x05, 0x00));
  EXPECT_THAT(Name("_UID", Integer(0)), ElementsAre(0x08, '_', 'U', 'I', 'D', 0x00));
}

TEST(AmlTest, DeviceAndScopeWrapTheirContents) {
  const Aml dev = Device("COM1", {Name("_UID", Integer(1))});
  EXPECT_EQ(dev, (Aml{0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x01}));
  const Aml scope = Scope("\\", {});
  EXPECT_THAT(scope, ElementsAre(0x10, 0x03, 0x5c, 0x00));
}

TEST(AmlTest, MethodsNotifyAndInterrupts) {
  // Method (_EVT, 1, Serialized) { Notify (PWRB, 0x80) }
  EXPECT_EQ(Method("_EVT", 1, true, {Notify("PWRB", 0x80)}),
            (Aml{0x14, 0x0d, '_', 'E', 'V', 'T', 0x09, 0x86, 'P', 'W', 'R', 'B', 0x0a, 0x80}));
  EXPECT_EQ(Method("_STA", 0, false, {}), (Aml{0x14, 0x06, '_', 'S', 'T', 'A', 0x00}));
  // Extended interrupt: consumer, edge, active-high, exclusive, one GSI.
  EXPECT_EQ(Interrupt(5, true, false), (Aml{0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0, 0, 0}));
  EXPECT_EQ(Interrupt(0x12345, false, true),
            (Aml{0x89, 0x06, 0x00, 0x05, 0x01, 0x45, 0x23, 0x01, 0}));
}

TEST(AmlTest, ResourceTemplateEndsWithEndTag) {
  const Aml rt = ResourceTemplate({IoPort(0x3f8, 8), IrqNoFlags(4)});
  // Buffer(size=13): I/O descriptor (8 bytes), IRQ (3 bytes), End Tag (2 bytes).
  EXPECT_EQ(rt, (Aml{0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08, 0x22,
                     0x10, 0x00, 0x79, 0x00}));
}

TEST(AmlDeathTest, InvalidNamesAreProgrammingErrors) {
  EXPECT_DEATH(Method("_EVT", 8, false, {}), "at most 7 arguments");
  EXPECT_DEATH(NameString("toolong"), "1-4 characters");
  EXPECT_DEATH(NameString("a"), "A-Z");
  EXPECT_DEATH(EisaId("PNP0A0"), "EISA ID");
}

}  // namespace
}  // namespace vmmkit::acpi
