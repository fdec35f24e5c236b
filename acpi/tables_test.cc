#include "acpi/tables.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::acpi {
namespace {

using ::testing::HasSubstr;

AcpiTables Example() {
  return AcpiTables{
      .dsdt_body = Terms({
          Scope(
              "\\_SB_",
              {Device("PCI0",
                      {
                          Name("_HID", EisaId("PNP0A08")),
                          Name("_CID", EisaId("PNP0A03")),
                          Name("_UID", Integer(0)),
                          Name("_CRS", ResourceTemplate({
                                           WordBusNumber(0, 0),
                                           IoPort(0xcf8, 8),
                                           WordIo(0, 0xcf7),
                                           DWordMemory(0xc0000000, 0xdfffffff, false),
                                           QWordMemory(0x100000000, 0x1ffffffff, true),
                                       })),
                      }),
               Device("COM1", {Name("_HID", EisaId("PNP0501")), Name("_UID", Integer(1)),
                               Name("_CRS", ResourceTemplate({IoPort(0x3f8, 8), IrqNoFlags(4)}))}),
               Device("PWRB", {Name("_HID", EisaId("PNP0C0C"))}),
               Device("GED0", {Name("_HID", String("ACPI0013")),
                               Name("_CRS", ResourceTemplate({Interrupt(5, true, false)})),
                               Method("_EVT", 1, true, {Notify("\\_SB_.PWRB", 0x80)})})}),
          Name("_S5_", Package({Integer(5), Integer(0)})),
          MethodReturning("\\_SB_.PCI0._STA", Integer(0xf)),
      }),
      .fadt = {.reset_register = SystemIoByte(0x64),
               .reset_value = 0xfe,
               .sleep_control = SystemIoByte(0x3b0),
               .sleep_status = SystemIoByte(0x3b1),
               .iapc_boot_arch = kIapc8042 | kIapcVgaNotPresent},
      .madt = {.apic_ids = {0, 1}, .overrides = {{0, 2, 0}, {9, 9, 0xd}}},
      .mcfg = McfgConfig{.ecam_base = 0xe0000000},
      .dmar = DmarConfig{.register_base = 0xfed90000},
  };
}

TEST(AcpiTablesTest, EveryTableChecksumsToZeroAndHasItsLength) {
  const AcpiTables t = Example();
  for (const auto& table : {Fadt(t.fadt, 0x1000), Madt(t.madt), Mcfg(*t.mcfg), Dsdt(t.dsdt_body),
                            Xsdt({0x1000, 0x2000}), Dmar(*t.dmar)}) {
    EXPECT_EQ(Checksum(table), 0);
    uint32_t length;
    std::memcpy(&length, table.data() + 4, 4);
    EXPECT_EQ(length, table.size());
  }
  EXPECT_EQ(Fadt(t.fadt, 0).size(), 276u);
  EXPECT_EQ(Mcfg(*t.mcfg).size(), 60u);
  const std::vector<uint8_t> dmar = Dmar(*t.dmar);
  ASSERT_EQ(dmar.size(), 48u + 16u);
  EXPECT_EQ(dmar[36], 38) << "host address width - 1";
  EXPECT_EQ(dmar[37], 0) << "no interrupt remapping";
  EXPECT_EQ(dmar[48], 0) << "DRHD";
  EXPECT_EQ(dmar[50], 16) << "its length";
  EXPECT_EQ(dmar[52], 1) << "INCLUDE_PCI_ALL";
  uint64_t base;
  std::memcpy(&base, &dmar[56], 8);
  EXPECT_EQ(base, 0xfed90000u);
  // With interrupt remapping: the flag, and the IOAPIC's device scope (what QEMU's q35 gives it:
  // bus 0xff, 00.0).
  const std::vector<uint8_t> ir = Dmar({.register_base = 0xfed90000,
                                        .interrupt_remapping = true,
                                        .ioapic = DmarConfig::IoapicScope{2, 0xff00}});
  ASSERT_EQ(ir.size(), 48u + 24u);
  EXPECT_EQ(Checksum(ir), 0);
  EXPECT_EQ(ir[37], 1) << "INTR_REMAP";
  EXPECT_EQ(ir[50], 24) << "DRHD length with one scope";
  EXPECT_EQ(std::vector<uint8_t>(ir.begin() + 64, ir.end()),
            (std::vector<uint8_t>{3, 8, 0, 0, 2, 0xff, 0, 0}));
  const std::vector<uint8_t> rsdp = Rsdp(0x12345678);
  EXPECT_EQ(Checksum(absl::MakeSpan(rsdp).subspan(0, 20)), 0);
  EXPECT_EQ(Checksum(rsdp), 0);
}

TEST(AcpiTablesTest, WriteLinksRsdpXsdtAndTables) {
  ASSERT_OK_AND_ASSIGN(GuestMemory mem, GuestMemory::CreateRam({{GuestAddress(0), 1 << 20}}));
  ASSERT_OK_AND_ASSIGN(GuestAddress rsdp,
                       WriteAcpiTables(mem, GuestAddress(0xe0000), 0x20000, Example()));
  EXPECT_EQ(rsdp, GuestAddress(0xe0000));
  ASSERT_OK_AND_ASSIGN(uint64_t xsdt, mem.ReadObj<uint64_t>(GuestAddress(0xe0000 + 24)));
  ASSERT_OK_AND_ASSIGN(uint32_t xsdt_len, mem.ReadObj<uint32_t>(GuestAddress(xsdt + 4)));
  EXPECT_EQ(xsdt_len, 36u + 4 * 8) << "FADT, MADT, MCFG, DMAR";
  std::vector<std::string> signatures;
  for (uint32_t i = 0; i < 4; ++i) {
    ASSERT_OK_AND_ASSIGN(uint64_t table, mem.ReadObj<uint64_t>(GuestAddress(xsdt + 36 + 8 * i)));
    ASSERT_OK_AND_ASSIGN(uint32_t sig, mem.ReadObj<uint32_t>(GuestAddress(table)));
    signatures.emplace_back(reinterpret_cast<const char*>(&sig), 4);
    if (signatures.back() == "FACP") {
      ASSERT_OK_AND_ASSIGN(uint64_t dsdt, mem.ReadObj<uint64_t>(GuestAddress(table + 140)));
      ASSERT_OK_AND_ASSIGN(uint32_t dsig, mem.ReadObj<uint32_t>(GuestAddress(dsdt)));
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(&dsig), 4), "DSDT");
    }
  }
  EXPECT_THAT(signatures, ::testing::ElementsAre("FACP", "APIC", "MCFG", "DMAR"));
}

TEST(AcpiTablesTest, WriteRejectsTooSmallAreas) {
  ASSERT_OK_AND_ASSIGN(GuestMemory mem, GuestMemory::CreateRam({{GuestAddress(0), 1 << 20}}));
  EXPECT_THAT(WriteAcpiTables(mem, GuestAddress(0xe0000), 64, Example()),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("only 64 are reserved")));
  EXPECT_THAT(WriteAcpiTables(mem, GuestAddress(0xfff00), 0x20000, Example()),
              StatusIs(absl::StatusCode::kOutOfRange));
}

// ACPICA's disassembler is the reference: it must accept every table and decode what we meant.
std::string Disassemble(const std::vector<uint8_t>& table, const std::string& name) {
  const std::string dir = std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR") : "/tmp";
  const std::string path = dir + "/" + name + ".dat";
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(table.data()),
             static_cast<std::streamsize>(table.size()));
  const std::string cmd = "cd " + dir + " && iasl -d " + name + ".dat > " + name + ".log 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream log(dir + "/" + name + ".log");
    return "iasl failed: " + std::string((std::istreambuf_iterator<char>(log)), {});
  }
  std::ifstream dsl(dir + "/" + name + ".dsl");
  return std::string((std::istreambuf_iterator<char>(dsl)), std::istreambuf_iterator<char>());
}

TEST(AcpiTablesTest, IaslDecodesTheDsdt) {
  if (std::system("command -v iasl > /dev/null") != 0) GTEST_SKIP() << "iasl not installed";
  const std::string dsl = Disassemble(Dsdt(Example().dsdt_body), "dsdt");
  EXPECT_THAT(dsl, HasSubstr("Device (PCI0)"));
  EXPECT_THAT(dsl, HasSubstr("EisaId (\"PNP0A08\")"));
  EXPECT_THAT(dsl, HasSubstr("WordBusNumber (ResourceProducer"));
  EXPECT_THAT(dsl, HasSubstr("0x0CF8,             // Range Minimum"));
  EXPECT_THAT(dsl, HasSubstr("0xDFFFFFFF"));
  EXPECT_THAT(dsl, HasSubstr("IRQNoFlags ()"));
  EXPECT_THAT(dsl, HasSubstr("Name (_S5, Package (0x02)"));
  EXPECT_THAT(dsl, HasSubstr("_STA, 0, NotSerialized)"));
  EXPECT_THAT(dsl, HasSubstr("Method (_EVT, 1, Serialized)"));
  EXPECT_THAT(dsl, HasSubstr("Notify (\\_SB.PWRB, 0x80)"));
  EXPECT_THAT(dsl, HasSubstr("Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )"));
  EXPECT_THAT(dsl, ::testing::Not(HasSubstr("Error")));
}

TEST(AcpiTablesTest, IaslDecodesFadtMadtMcfgDmar) {
  if (std::system("command -v iasl > /dev/null") != 0) GTEST_SKIP() << "iasl not installed";
  const AcpiTables t = Example();
  const std::string fadt = Disassemble(Fadt(t.fadt, 0xe0100), "facp");
  EXPECT_THAT(fadt, HasSubstr("Hardware Reduced (V5) : 1"));
  EXPECT_THAT(fadt, HasSubstr("Reset Register Supported (V2) : 1"));
  EXPECT_THAT(fadt, HasSubstr("Value to cause reset : FE"));
  EXPECT_THAT(fadt, HasSubstr("Address : 00000000000003B0"));
  const std::string madt = Disassemble(Madt(t.madt), "apic");
  EXPECT_THAT(madt, HasSubstr("Processor Local APIC"));
  EXPECT_THAT(madt, HasSubstr("Local Apic ID : 01"));
  EXPECT_THAT(madt, HasSubstr("Interrupt Source Override"));
  EXPECT_THAT(madt, HasSubstr("Address : FEC00000"));
  const std::string mcfg = Disassemble(Mcfg(*t.mcfg), "mcfg");
  EXPECT_THAT(mcfg, HasSubstr("Base Address : 00000000E0000000"));
  const std::string dmar = Disassemble(Dmar(*t.dmar), "dmar");
  EXPECT_THAT(dmar, HasSubstr("Host Address Width : 26"));
  EXPECT_THAT(dmar, HasSubstr("Register Base Address : 00000000FED90000"));
  EXPECT_THAT(dmar, HasSubstr("[Hardware Unit Definition]"));
  EXPECT_THAT(dmar, HasSubstr("Flags : 01"));
  for (const std::string* s : {&fadt, &madt, &mcfg, &dmar}) {
    EXPECT_THAT(*s, ::testing::Not(HasSubstr("Invalid"))) << *s;
    EXPECT_THAT(*s, ::testing::Not(HasSubstr("iasl failed")));
  }
}

}  // namespace
}  // namespace vmmkit::acpi
