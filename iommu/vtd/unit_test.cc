// RemappingUnit driven as Linux's intel-iommu driver drives it (legacy mode, caching mode, queued
// invalidation), with guest tables in real guest memory.
#include "iommu/vtd/unit.h"

#include <random>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "iommu/shadow.h"
#include "iommu/testing/fake_dma_backend.h"
#include "iommu/vtd/testing/guest_tables.h"
#include "memory/address_space.h"

namespace vmmkit::iommu::vtd {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using testing::kPteRead;
using testing::kPteWrite;

constexpr uint64_t kRamSize = 64 << 20;
constexpr uint64_t kRootTable = 0x100000, kQueue = 0x101000, kStatus = 0x102000;
constexpr uint16_t kEdu = 0x0018, kOther = 0x0020;  // 00:03.0 and 00:04.0.
constexpr uint64_t kRw = kPteRead | kPteWrite;

// Records what a notifier is told.
class Recorder : public IommuNotifier {
 public:
  absl::Status Notify(absl::Span<const IommuEvent> events) override {
    for (const IommuEvent& e : events) {
      log.push_back(
          absl::StrCat(e.type == IommuEventType::kMap ? "MAP " : "UNMAP ", e.mapping.ToString()));
    }
    return absl::OkStatus();
  }
  std::vector<std::string> Take() { return std::exchange(log, {}); }
  std::vector<std::string> log;
};

class UnitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    region_ = *GuestRegion::Create(GuestAddress(0), kRamSize);
    ASSERT_OK_AND_ASSIGN(GuestMemory ram, GuestMemory::Create({region_}));
    ram_.emplace(std::move(ram));
    tables_.emplace(*ram_, 0x200000);
    unit_ = std::make_unique<RemappingUnit>(*ram_,
                                            UnitOptions{.send_msi = [this](uint64_t a, uint32_t d) {
                                              msis_.push_back({a, d});
                                            }});
  }
  uint32_t Read32(uint64_t off) {
    uint32_t v = 0;
    unit_->Read(off, absl::MakeSpan(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  uint64_t Read64(uint64_t off) {
    uint64_t v = 0;
    unit_->Read(off, absl::MakeSpan(reinterpret_cast<uint8_t*>(&v), 8));
    return v;
  }
  void Write32(uint64_t off, uint32_t v) {
    unit_->Write(off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  void Write64(uint64_t off, uint64_t v) {
    unit_->Write(off, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(&v), 8));
  }
  // Linux's gcmd protocol: the persistent bits it keeps, plus at most one one-shot bit.
  void Command(uint32_t bit, bool persistent) {
    if (persistent) {
      gcmd_ |= bit;
      Write32(kRegGcmd, gcmd_);
    } else {
      Write32(kRegGcmd, gcmd_ | bit);
    }
  }
  // intel-iommu's boot: queued invalidation, root table, global invalidations, translation on.
  void Boot() {
    Write32(kRegIqt, 0);
    Write64(kRegIqa, kQueue);  // QS 0: 256 descriptors.
    Command(kGcmdQie, true);
    ASSERT_TRUE(Read32(kRegGsts) & kGcmdQie);
    Write64(kRegRtaddr, kRootTable);
    Command(kGcmdSrtp, false);
    ASSERT_TRUE(Read32(kRegGsts) & kGcmdSrtp);
    ASSERT_TRUE(Submit({{0x11, 0}, {0x12, 0}}));
    Command(kGcmdTe, true);
    ASSERT_TRUE(Read32(kRegGsts) & kGcmdTe);
  }
  // qi_submit_sync: the descriptors, a wait with a status write, the tail; true if the status
  // was written by the time the tail write returned.
  bool Submit(std::vector<std::pair<uint64_t, uint64_t>> descs) {
    descs.push_back({0x0000000200000025ull, kStatus});
    tables_->Put(kStatus, 0);
    for (const auto& [lo, hi] : descs) {
      tables_->Put(kQueue + 16 * tail_, lo);
      tables_->Put(kQueue + 16 * tail_ + 8, hi);
      tail_ = (tail_ + 1) % 256;
    }
    Write32(kRegIqt, tail_ << 4);
    return (tables_->Get(kStatus) & 0xffffffff) == 2;
  }
  // Attach as Linux does with CM: context entry, device-selective context invalidation with
  // domain 0, domain-selective IOTLB invalidation of the new domain.
  void Attach(uint16_t sid, uint16_t domain, uint64_t pt) {
    tables_->Attach(kRootTable, sid, domain, pt);
    ASSERT_TRUE(Submit({{(uint64_t{sid} << 32) | 0x31, 0}, {(uint64_t{domain} << 16) | 0x22, 0}}));
  }
  void Detach(uint16_t sid, uint16_t domain) {
    tables_->Detach(kRootTable, sid);
    ASSERT_TRUE(Submit({{(uint64_t{sid} << 32) | (uint64_t{domain} << 16) | 0x31, 0},
                        {(uint64_t{domain} << 16) | 0x22, 0}}));
  }
  // A page-selective IOTLB invalidation of 2^am pages at `addr` in `domain`.
  void Psi(uint16_t domain, uint64_t addr, uint64_t am) {
    ASSERT_TRUE(Submit({{(uint64_t{domain} << 16) | 0x32, addr | am}}));
  }

  std::shared_ptr<GuestRegion> region_;
  std::optional<GuestMemory> ram_;
  std::optional<testing::GuestTables> tables_;
  std::unique_ptr<RemappingUnit> unit_;
  std::vector<std::pair<uint64_t, uint32_t>> msis_;
  uint32_t gcmd_ = 0;
  uint32_t tail_ = 0;
};

TEST_F(UnitTest, CapabilitiesAreWhatALinuxGuestLooksFor) {
  EXPECT_EQ(Read32(kRegVer), 0x10u);
  const uint64_t cap = Read64(kRegCap);
  EXPECT_TRUE(cap & (1u << 7)) << "caching mode";
  EXPECT_EQ((cap >> 8) & 0x1f, 0x2u) << "SAGAW: 39-bit, 3-level only";
  EXPECT_EQ((cap >> 16) & 0x3f, 38u) << "MGAW";
  EXPECT_EQ((cap >> 24) & 0x3ff, kRegFrcd / 16) << "FRO";
  EXPECT_EQ((cap >> 34) & 0xf, 0x3u) << "2 MiB and 1 GiB pages";
  EXPECT_TRUE(cap & (uint64_t{1} << 39)) << "PSI";
  EXPECT_EQ((cap >> 48) & 0x3f, 18u) << "MAMV";
  const uint64_t ecap = Read64(kRegEcap);
  EXPECT_TRUE(ecap & 2) << "QI";
  EXPECT_TRUE(ecap & (1u << 6)) << "pass-through";
  EXPECT_EQ((ecap >> 8) & 0x3ff, kRegIva / 16) << "IRO";
  EXPECT_FALSE(ecap & (uint64_t{1} << 43)) << "never scalable mode";
  EXPECT_FALSE(ecap & (1u << 3)) << "no interrupt remapping unless asked for";
  EXPECT_EQ(Read32(kRegCap + 4), static_cast<uint32_t>(cap >> 32)) << "dword halves";
}

// Interrupt remapping as Linux sets it up (after queued invalidation): IRTA, SIRTP, a global
// interrupt entry cache invalidation, IRE; CFI stays clear, so compatibility format is blocked.
class InterruptRemappingTest : public UnitTest {
 protected:
  static constexpr uint64_t kIrt = 0x300000;
  static constexpr uint32_t kEntries = 256;  // IRTA.S = 7.
  void SetUp() override {
    UnitTest::SetUp();
    unit_ = std::make_unique<RemappingUnit>(*ram_, UnitOptions{.send_msi =
                                                                   [this](uint64_t a, uint32_t d) {
                                                                     msis_.push_back({a, d});
                                                                   },
                                                               .interrupt_remapping = true,
                                                               .on_interrupt_entries_changed =
                                                                   [this] {
                                                                     ++changes_;
                                                                     // What the machine does here:
                                                                     // re-translate its routes.
                                                                     recheck_ = unit_->Translate(
                                                                         route_, kEdu);
                                                                   }});
    Boot();
    Write64(kRegIrta, kIrt | 7);
    Command(kGcmdSirtp, false);
    ASSERT_TRUE(Read32(kRegGsts) & kGcmdSirtp) << "IRTPS";
    ASSERT_TRUE(Submit({{0x4, 0}}));  // Global IEC.
    Command(kGcmdIre, true);
    ASSERT_TRUE(Read32(kRegGsts) & kGcmdIre) << "IRES";
    EXPECT_FALSE(Read32(kRegGsts) & kGcmdCfi);
  }
  // What Linux writes: present, redirection hint, edge, xAPIC destination `apic` << 8, the
  // requester's id with SVT 1.
  void SetIrte(uint32_t index, uint8_t vector, uint8_t apic, uint16_t sid) {
    tables_->Put(kIrt + 16 * index,
                 1 | (1 << 3) | (uint64_t{vector} << 16) | (uint64_t{apic} << 40));
    tables_->Put(kIrt + 16 * index + 8, sid | (uint64_t{1} << 18));
  }
  static irq::MsiMessage Handle(uint32_t index) {
    return {0xfee00000 | ((index & 0x7fff) << 5) | (1 << 4) | (1 << 3), 0};
  }
  uint64_t FaultRecordHigh() { return Read64(kRegFrcd + 8); }
  void ClearFault() { Write32(kRegFrcd + 12, 1u << 31); }

  int changes_ = 0;
  irq::MsiMessage route_ = Handle(5);
  absl::StatusOr<irq::MsiMessage> recheck_ = absl::UnknownError("none");
};

TEST_F(InterruptRemappingTest, RemappableInterruptsGoThroughTheGuestsTable) {
  EXPECT_TRUE(Read64(kRegEcap) & (1u << 3)) << "IR";
  EXPECT_EQ((Read64(kRegEcap) >> 20) & 0xf, 0xfu) << "MHMV";
  EXPECT_EQ(Read64(kRegIrta), kIrt | 7);
  EXPECT_EQ(changes_, 3) << "SIRTP, the IEC and IRE each re-check the routes";
  SetIrte(5, 0x41, 1, kEdu);
  ASSERT_OK_AND_ASSIGN(irq::MsiMessage out, unit_->Translate(Handle(5), kEdu));
  EXPECT_EQ(out, (irq::MsiMessage{0xfee01008, 0x41}));
  // The guest changes the entry and invalidates it: the routes are checked again.
  SetIrte(5, 0x42, 0, kEdu);
  ASSERT_TRUE(Submit({{0x4 | (1 << 4) | (uint64_t{5} << 32), 0}}));  // Index-selective.
  EXPECT_EQ(changes_, 4);
  ASSERT_OK(recheck_.status());
  EXPECT_EQ(recheck_->data, 0x42u);
  EXPECT_EQ(unit_->counters().interrupt_entry_invalidations, 2u);
  EXPECT_EQ(unit_->counters().faults_recorded, 0u);
}

TEST_F(InterruptRemappingTest, RefusedInterruptsAreFaultsWithTheirIndex) {
  SetIrte(5, 0x41, 0, kEdu);
  struct Case {
    irq::MsiMessage msg;
    uint16_t sid;
    FaultReason reason;
  };
  const Case cases[] = {
      {Handle(5), kOther, FaultReason::kIrSourceIdMismatch},
      {Handle(6), kEdu, FaultReason::kIrteNotPresent},
      {Handle(kEntries), kEdu, FaultReason::kIrIndexBeyondTable},
      {{Handle(5).address, 0x10000}, kEdu, FaultReason::kIrRequestReserved},
      {{0xfee00000, 0x41}, kEdu, FaultReason::kIrCompatibilityBlocked},
  };
  for (const Case& c : cases) {
    EXPECT_FALSE(unit_->Translate(c.msg, c.sid).ok()) << FaultReasonName(c.reason);
    const uint64_t high = FaultRecordHigh();
    EXPECT_TRUE(high >> 63) << FaultReasonName(c.reason);
    EXPECT_EQ((high >> 32) & 0xff, static_cast<uint64_t>(c.reason)) << FaultReasonName(c.reason);
    EXPECT_EQ(high & 0xffff, c.sid);
    ClearFault();
  }
  // The index is in the record's low quadword, bits 63:48.
  EXPECT_FALSE(unit_->Translate(Handle(6), kEdu).ok());
  EXPECT_EQ(Read64(kRegFrcd) >> 48, 6u);
  ClearFault();
  // Reserved bits in the entry; then FPD: blocked, but not recorded.
  tables_->Put(kIrt + 16 * 7, 1 | (1u << 15) | (0x41 << 16));
  EXPECT_FALSE(unit_->Translate(Handle(7), kEdu).ok());
  EXPECT_EQ((FaultRecordHigh() >> 32) & 0xff, static_cast<uint64_t>(FaultReason::kIrteReserved));
  ClearFault();
  const uint64_t before = unit_->counters().faults_recorded;
  tables_->Put(kIrt + 16 * 8, 1 | (1 << 1) | (0x41 << 16));
  tables_->Put(kIrt + 16 * 8 + 8, kEdu | (uint64_t{1} << 18));
  EXPECT_FALSE(unit_->Translate(Handle(8), kOther).ok());
  EXPECT_EQ(unit_->counters().faults_recorded, before);
  // A table outside guest RAM.
  Write64(kRegIrta, (kRamSize + 0x1000) | 7);
  Command(kGcmdSirtp, false);
  EXPECT_FALSE(unit_->Translate(Handle(5), kEdu).ok());
  EXPECT_EQ((FaultRecordHigh() >> 32) & 0xff, static_cast<uint64_t>(FaultReason::kIrTableAccess));
  EXPECT_GE(unit_->counters().interrupts_blocked, 9u);
}

TEST_F(InterruptRemappingTest, ReChecksRecordNoFaultsAndCfiLetsCompatibilityFormatThrough) {
  // A route whose entry the guest has just cleared: the re-check blocks it without a fault
  // (no interrupt was raised).
  ASSERT_TRUE(Submit({{0x4, 0}}));
  EXPECT_FALSE(recheck_.ok());
  EXPECT_EQ(unit_->counters().faults_recorded, 0u);
  Command(kGcmdCfi, true);
  ASSERT_TRUE(Read32(kRegGsts) & kGcmdCfi) << "CFIS";
  EXPECT_THAT(unit_->Translate({0xfee00000, 0x41}, kEdu),
              IsOkAndHolds(irq::MsiMessage{0xfee00000, 0x41}));
  // Remapping off: compatibility format passes, remappable format is refused.
  gcmd_ &= ~(kGcmdIre | kGcmdCfi);
  Write32(kRegGcmd, gcmd_);
  EXPECT_FALSE(Read32(kRegGsts) & kGcmdIre);
  EXPECT_TRUE(unit_->Translate({0xfee00000, 0x41}, kEdu).ok());
  EXPECT_THAT(unit_->Translate(Handle(5), kEdu), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(UnitTest, WithoutInterruptRemappingItsRegistersAndDescriptorsAreRefused) {
  Boot();
  Write64(kRegIrta, 0x300000 | 7);
  EXPECT_EQ(Read64(kRegIrta), 0u);
  Write32(kRegGcmd, gcmd_ | kGcmdSirtp | kGcmdIre);
  EXPECT_FALSE(Read32(kRegGsts) & (kGcmdSirtp | kGcmdIre));
  EXPECT_FALSE(Submit({{0x4, 0}}));
  EXPECT_TRUE(Read32(kRegFsts) & kFstsIqe);
  EXPECT_TRUE(unit_->Translate({0xfee00000, 0x41}, kEdu).ok());
}

TEST_F(UnitTest, CommandsTakeEffectBeforeTheWriteReturns) {
  Boot();
  EXPECT_EQ(Read32(kRegGsts), kGcmdTe | kGcmdSrtp | kGcmdQie);
  gcmd_ &= ~kGcmdTe;
  Write32(kRegGcmd, gcmd_);
  EXPECT_EQ(Read32(kRegGsts) & kGcmdTe, 0u);
  EXPECT_EQ(Read64(kRegIqh), uint64_t{tail_} << 4) << "the queue ran to its tail";
}

TEST_F(UnitTest, CachingModeInvalidationsBecomeExactMapsAndUnmaps) {
  Boot();
  Recorder edu;
  ASSERT_OK(unit_->RegisterNotifier(kEdu, &edu));
  const uint64_t pt = tables_->NewTable();
  Attach(kEdu, 1, pt);
  EXPECT_THAT(edu.Take(), IsEmpty()) << "an empty domain";
  EXPECT_EQ(unit_->Domain(kEdu), 1);
  // Map (non-present -> present), then the PSI caching mode demands; Linux may pass an
  // unaligned address.
  tables_->MapPage(pt, 0x10000, 0x1000, 0x800000, kRw);
  Psi(1, 0x10000, 0);
  tables_->MapPage(pt, 0x200000, 0x200000, 0x1000000, kPteRead);
  Psi(1, 0x201000, 9);
  EXPECT_THAT(edu.Take(), ElementsAre("MAP [0x10000, 0x10fff] -> 0x800000 rw",
                                      "MAP [0x200000, 0x3fffff] -> 0x1000000 r"));
  Psi(1, 0x10000, 0);  // Again: nothing changed, nothing said.
  Psi(2, 0x10000, 0);  // Another domain's: not this device's.
  EXPECT_THAT(edu.Take(), IsEmpty());
  tables_->UnmapPage(pt, 0x10000, 0x1000);
  tables_->UnmapPage(pt, 0x200000, 0x200000);
  ASSERT_TRUE(Submit({{(1 << 16) | 0x22, 0}}));  // Domain-selective: both gone, one UNMAP each.
  EXPECT_THAT(edu.Take(), ElementsAre("UNMAP [0x10000, 0x10fff] -> 0x800000 rw",
                                      "UNMAP [0x200000, 0x3fffff] -> 0x1000000 r"));
  tables_->MapPage(pt, 0x5000, 0x1000, 0x900000, kRw);
  ASSERT_TRUE(Submit({{0x12, 0}}));  // Global.
  EXPECT_THAT(edu.Take(), ElementsAre("MAP [0x5000, 0x5fff] -> 0x900000 rw"));
  const UnitCounters c = unit_->counters();
  EXPECT_EQ(c.page_invalidations, 4u);
  EXPECT_EQ(c.domain_invalidations, 2u);
  EXPECT_EQ(c.global_invalidations, 2u);
  // Detach: the device's mappings go, by the device-selective invalidation naming the old domain.
  Detach(kEdu, 1);
  EXPECT_THAT(edu.Take(), ElementsAre("UNMAP [0x5000, 0x5fff] -> 0x900000 rw"));
  EXPECT_EQ(unit_->Domain(kEdu), std::nullopt);
  ASSERT_OK(unit_->UnregisterNotifier(kEdu, &edu));
}

TEST_F(UnitTest, AnAttachReplaysTheDomainAndDomainsAreIsolated) {
  Boot();
  const uint64_t pt1 = tables_->NewTable(), pt2 = tables_->NewTable();
  Recorder edu, other;
  ASSERT_OK(unit_->RegisterNotifier(kEdu, &edu));
  ASSERT_OK(unit_->RegisterNotifier(kOther, &other));
  Attach(kEdu, 1, pt1);
  tables_->MapPage(pt1, 0x1000, 0x1000, 0x800000, kRw);
  Psi(1, 0x1000, 0);
  edu.Take();
  // A second device joins domain 1: it gets what the domain maps now.
  Attach(kOther, 1, pt1);
  EXPECT_THAT(other.Take(), ElementsAre("MAP [0x1000, 0x1fff] -> 0x800000 rw"));
  EXPECT_THAT(edu.Take(), IsEmpty()) << "the first device's context did not change";
  // Moved to a domain of its own: the old mappings go, the new domain's come.
  Detach(kOther, 1);
  tables_->MapPage(pt2, 0x7000, 0x1000, 0xa00000, kRw);
  Attach(kOther, 2, pt2);
  EXPECT_THAT(other.Take(), ElementsAre("UNMAP [0x1000, 0x1fff] -> 0x800000 rw",
                                        "MAP [0x7000, 0x7fff] -> 0xa00000 rw"));
  tables_->MapPage(pt1, 0x2000, 0x1000, 0x801000, kRw);
  Psi(1, 0x2000, 0);
  EXPECT_THAT(edu.Take(), ElementsAre("MAP [0x2000, 0x2fff] -> 0x801000 rw"));
  EXPECT_THAT(other.Take(), IsEmpty()) << "domain 2 is not domain 1";
}

// Without caching mode a guest invalidates only what it removes (Linux: batched, one domain
// invalidation per flush): an emulated device's DMA still translates by the live tables, a device
// IOTLB hears every invalidated range, and a shadow (which must see every map) is refused.
TEST_F(UnitTest, WithoutCachingModeDmaTranslatesIotlbsHearUnmapsAndShadowsAreRefused) {
  unit_ = std::make_unique<RemappingUnit>(*ram_, UnitOptions{.caching_mode = false});
  EXPECT_FALSE(Read64(kRegCap) & (1u << 7)) << "no caching mode";
  EXPECT_FALSE(unit_->caching_mode());
  Boot();
  const uint64_t pt = tables_->NewTable();
  Attach(kEdu, 1, pt);
  Recorder shadow, iotlb;
  EXPECT_THAT(
      unit_->RegisterNotifier(kEdu, &shadow),
      StatusIs(absl::StatusCode::kFailedPrecondition, ::testing::HasSubstr("caching mode")));
  EXPECT_EQ(unit_->NotifierCount(kEdu), 0u);
  ASSERT_OK(unit_->RegisterNotifier(kEdu, &iotlb, kUnmapEvents));
  // Mapped with no invalidation: the DMA reads the tables (nothing negative is cached).
  tables_->MapPage(pt, 0x4000, 0x1000, 0x804000, kRw);
  tables_->MapPage(pt, 0x5000, 0x1000, 0x805000, kRw);
  ASSERT_OK_AND_ASSIGN(IotlbEntry e, unit_->TranslateDma(kEdu, Iova(0x4010), IommuAccess::kWrite));
  EXPECT_EQ(e.translated, 0x804000u);
  EXPECT_THAT(iotlb.Take(), IsEmpty());
  // Both unmapped, then one domain-selective flush (the flush queue).
  tables_->UnmapPage(pt, 0x4000, 0x1000);
  tables_->UnmapPage(pt, 0x5000, 0x1000);
  ASSERT_TRUE(Submit({{(1 << 16) | 0x22, 0}}));
  EXPECT_THAT(iotlb.Take(), ElementsAre("UNMAP [0x0, 0xfffffffffffffffe] -> 0x0 none"));
  EXPECT_THAT(unit_->TranslateDma(kEdu, Iova(0x4010), IommuAccess::kWrite),
              StatusIs(absl::StatusCode::kNotFound))
      << "the flush emptied the IOTLB";
  Psi(1, 0x6000, 1);
  EXPECT_THAT(iotlb.Take(), ElementsAre("UNMAP [0x6000, 0x7fff] -> 0x0 none"));
  Psi(2, 0x6000, 0);  // Another domain's: not this device's.
  EXPECT_THAT(iotlb.Take(), IsEmpty());
  EXPECT_EQ(unit_->TrackedMappings(kEdu), 0u);
  ASSERT_OK(unit_->UnregisterNotifier(kEdu, &iotlb));
}

TEST_F(UnitTest, HotplugUnplugHotplugKeepsOneNotifierAndReplays) {
  Boot();
  const uint64_t pt = tables_->NewTable();
  Attach(kEdu, 1, pt);
  tables_->MapPage(pt, 0x1000, 0x1000, 0x800000, kRw);
  Psi(1, 0x1000, 0);
  Recorder edu;
  ASSERT_OK(unit_->RegisterNotifier(kEdu, &edu));  // Hot-plugged: replayed.
  EXPECT_THAT(edu.Take(), ElementsAre("MAP [0x1000, 0x1fff] -> 0x800000 rw"));
  EXPECT_THAT(unit_->RegisterNotifier(kEdu, &edu), StatusIs(absl::StatusCode::kAlreadyExists));
  ASSERT_OK(unit_->UnregisterNotifier(kEdu, &edu));  // Unplugged.
  EXPECT_EQ(unit_->NotifierCount(kEdu), 0u);
  tables_->MapPage(pt, 0x3000, 0x1000, 0x803000, kRw);
  Psi(1, 0x3000, 0);
  ASSERT_OK(unit_->RegisterNotifier(kEdu, &edu));  // Plugged again.
  EXPECT_THAT(edu.Take(), ElementsAre("MAP [0x1000, 0x1fff] -> 0x800000 rw",
                                      "MAP [0x3000, 0x3fff] -> 0x803000 rw"));
  EXPECT_EQ(unit_->NotifierCount(kEdu), 1u);
  EXPECT_EQ(unit_->TrackedMappings(kEdu), 2u);
}

TEST_F(UnitTest, TranslationOffAndPassThroughAreIdentityOverRam) {
  Recorder edu;
  ASSERT_OK(unit_->RegisterNotifier(kEdu, &edu));
  EXPECT_THAT(edu.Take(), ElementsAre("MAP [0x0, 0x3ffffff] -> 0x0 rw")) << "translation off";
  Boot();
  EXPECT_THAT(edu.Take(), ElementsAre("UNMAP [0x0, 0x3ffffff] -> 0x0 rw")) << "no context yet";
  tables_->SetContext(kRootTable, kEdu, (2 << 2) | 1, 1 | (5 << 8));  // iommu=pt
  ASSERT_TRUE(Submit({{(uint64_t{kEdu} << 32) | 0x31, 0}}));
  EXPECT_THAT(edu.Take(), ElementsAre("MAP [0x0, 0x3ffffff] -> 0x0 rw"));
  ASSERT_OK_AND_ASSIGN(IotlbEntry e,
                       unit_->TranslateDma(kEdu, Iova(0x123456), IommuAccess::kWrite));
  EXPECT_EQ(e.translated, 0x123000u);
}

TEST_F(UnitTest, WaitDescriptorsWriteStatusAndRaiseTheirInterrupt) {
  Boot();
  Write32(kRegIedata, 0x41);
  Write32(kRegIeaddr, 0xfee00000);
  ASSERT_TRUE(Submit({{0x0000000300000035ull, kStatus + 8}}));  // IF | SW, data 3.
  EXPECT_EQ(tables_->Get(kStatus + 8) & 0xffffffff, 3u);
  EXPECT_EQ(Read32(kRegIcs), 1u) << "IWC";
  EXPECT_EQ(Read32(kRegIectl) & (1u << 30), 1u << 30) << "pending: the interrupt is masked";
  EXPECT_THAT(msis_, IsEmpty());
  Write32(kRegIectl, 0);  // Unmask: the pending interrupt goes out.
  EXPECT_THAT(msis_, ElementsAre(std::pair<uint64_t, uint32_t>(0xfee00000, 0x41)));
  Write32(kRegIcs, 1);
  EXPECT_EQ(Read32(kRegIcs), 0u);
}

TEST_F(UnitTest, BadDescriptorsStopTheQueueWithAnError) {
  Boot();
  Write32(kRegFedata, 0x42);
  Write32(kRegFeaddr, 0xfee00000);
  Write32(kRegFectl, 0);
  const uint32_t bad_at = tail_;
  EXPECT_FALSE(Submit({{0x7, 0}}));  // An unknown type.
  EXPECT_TRUE(Read32(kRegFsts) & kFstsIqe);
  EXPECT_EQ(Read64(kRegIqh), uint64_t{bad_at} << 4) << "the head stays at the bad descriptor";
  EXPECT_THAT(msis_, ElementsAre(std::pair<uint64_t, uint32_t>(0xfee00000, 0x42)));
  // Linux's recovery: its wait over the bad slot, clear IQE; the queue runs on.
  tables_->Put(kQueue + 16 * bad_at, 0x0000000200000025ull);
  tables_->Put(kQueue + 16 * bad_at + 8, kStatus);
  Write32(kRegFsts, kFstsIqe);
  EXPECT_EQ(Read64(kRegIqh), uint64_t{tail_} << 4);
  EXPECT_EQ(tables_->Get(kStatus) & 0xffffffff, 2u);
  // Each of these is an error too.
  for (const auto& [lo, hi] : std::vector<std::pair<uint64_t, uint64_t>>{
           {0x01 | (1 << 8), 0},        // Context: reserved bit.
           {0x01, 0},                   // Context: granularity 0.
           {0x11, 1},                   // Context: high qword must be zero.
           {0x32, 19},                  // IOTLB: page mask above MAMV.
           {0x32, 1 << 7},              // IOTLB: reserved address bit.
           {0x3, 0},                    // Device TLB: not offered.
           {0x25 | (1 << 7), kStatus},  // Wait: page-request drain, not offered.
           {0x25, kRamSize + 8},        // Wait: status outside guest RAM.
       }) {
    EXPECT_FALSE(Submit({{lo, hi}})) << std::hex << lo << " " << hi;
    EXPECT_TRUE(Read32(kRegFsts) & kFstsIqe) << std::hex << lo << " " << hi;
    const uint32_t at = static_cast<uint32_t>(Read64(kRegIqh) >> 4);
    tables_->Put(kQueue + 16 * at, 0x5);  // A harmless descriptor (a bare wait) in its place.
    tables_->Put(kQueue + 16 * at + 8, 0);
    Write32(kRegFsts, kFstsIqe);
    EXPECT_EQ(Read64(kRegIqh), uint64_t{tail_} << 4);
  }
  // A tail beyond the queue's 256 entries.
  Write32(kRegIqt, 300 << 4);
  EXPECT_TRUE(Read32(kRegFsts) & kFstsIqe);
  EXPECT_GE(unit_->counters().queue_errors, 10u);
}

TEST_F(UnitTest, DmaFaultsAreRecordedCompressedAndSignalled) {
  Boot();
  Write32(kRegFedata, 0x43);
  Write32(kRegFeaddr, 0xfee00000);
  Write32(kRegFectl, 0);
  const uint64_t pt = tables_->NewTable();
  Attach(kEdu, 1, pt);
  tables_->MapPage(pt, 0x1000, 0x1000, 0x800000, kPteRead);
  Psi(1, 0x1000, 0);
  ASSERT_OK(unit_->TranslateDma(kEdu, Iova(0x1008), IommuAccess::kRead).status());
  EXPECT_THAT(unit_->TranslateDma(kEdu, Iova(0x1008), IommuAccess::kWrite),
              StatusIs(absl::StatusCode::kPermissionDenied));
  const uint32_t fsts = Read32(kRegFsts);
  EXPECT_TRUE(fsts & kFstsPpf);
  EXPECT_EQ((fsts >> 8) & 0xff, 0u) << "FRI";
  const uint64_t hi = Read64(kRegFrcd + 8);
  EXPECT_EQ(hi >> 63, 1u) << "F";
  EXPECT_EQ((hi >> 62) & 1, 0u) << "T: a write";
  EXPECT_EQ((hi >> 32) & 0xff, 0x5u) << "write denied";
  EXPECT_EQ(hi & 0xffff, kEdu);
  EXPECT_EQ(Read64(kRegFrcd), 0x1000u);
  EXPECT_THAT(msis_, ElementsAre(std::pair<uint64_t, uint32_t>(0xfee00000, 0x43)));
  // The same device again while its record is pending: compressed, no new interrupt.
  EXPECT_FALSE(unit_->TranslateDma(kEdu, Iova(0x9000), IommuAccess::kRead).ok());
  EXPECT_EQ(msis_.size(), 1u);
  // Another device while the one record is full: overflow.
  EXPECT_FALSE(unit_->TranslateDma(kOther, Iova(0x9000), IommuAccess::kRead).ok());
  EXPECT_TRUE(Read32(kRegFsts) & kFstsPfo);
  // Linux's handler: clear F, then the status bits.
  Write32(kRegFrcd + 12, 0x80000000);
  Write32(kRegFsts, kFstsPfo | kFstsPpf);
  EXPECT_EQ(Read32(kRegFsts), 0u);
  EXPECT_EQ(unit_->counters().faults_recorded, 1u);
}

TEST_F(UnitTest, GarbageContextsAreFaultsNotMappings) {
  Boot();
  Recorder edu;
  ASSERT_OK(unit_->RegisterNotifier(kEdu, &edu));
  tables_->SetContext(kRootTable, kEdu, 0x300000 | 1 | (0xff << 4), 1 | (1 << 8));  // Reserved.
  ASSERT_TRUE(Submit({{(uint64_t{kEdu} << 32) | 0x31, 0}}));
  EXPECT_EQ((Read64(kRegFrcd + 8) >> 32) & 0xff, 0xbu);
  tables_->SetContext(kRootTable, kEdu, (kRamSize + 0x100000) | 1, 1 | (1 << 8));  // Outside RAM.
  Write32(kRegFrcd + 12, 0x80000000);
  ASSERT_TRUE(Submit({{(uint64_t{kEdu} << 32) | 0x31, 0}, {(1 << 16) | 0x22, 0}}));
  EXPECT_THAT(edu.Take(), IsEmpty());
  EXPECT_EQ(unit_->TrackedMappings(kEdu), 0u);
}

// A hostile guest writing anything to any register, and anything into its queue and root
// table: the unit never crashes or hangs (the sanitizer passes check its memory accesses), and
// its registers keep only the bits they define.
TEST_F(UnitTest, RandomRegisterWritesAndDescriptors) {
  Boot();
  Recorder edu;
  ASSERT_OK(unit_->RegisterNotifier(kEdu, &edu));
  std::mt19937_64 rng(5);
  for (int i = 0; i < 20000; ++i) {
    if (rng() % 4 == 0) {
      tables_->Put(kQueue + 8 * (rng() % 512), rng() % 3 == 0 ? rng() : rng() & 0xffff00ff);
    }
    if (rng() % 8 == 0) tables_->Put(kRootTable + 8 * (rng() % 64), rng() & 0x7ff0fff);
    const uint64_t off = (rng() % RemappingUnit::kSize) & ~uint64_t{3};
    if (rng() % 2) {
      Write32(off, static_cast<uint32_t>(rng()));
    } else if (off % 8 == 0) {
      Write64(off, rng());
    }
    (void)Read32(off);
  }
  EXPECT_EQ(Read32(kRegGsts) & ~(kGcmdTe | kGcmdSrtp | kGcmdQie), 0u);
  EXPECT_LT(Read64(kRegIqh), uint64_t{1} << 19);
  EXPECT_EQ(Read64(kRegRtaddr) & 0xfff, 0u);
  EXPECT_GT(unit_->counters().queue_errors, 0u) << "the random queue held errors";
}

// The randomized model check of the shadow, against the VT-d model: random guest page-table
// edits, each followed by the invalidation Linux would send, leave the host IOMMU (through
// VfioShadow) holding exactly the guest's present translations.
TEST_F(UnitTest, TheShadowFollowsRandomGuestEditsExactly) {
  AddressSpace system("system");
  ASSERT_OK(system.AddRam("ram", region_));
  iommu::testing::FakeDmaBackend host;
  ASSERT_OK_AND_ASSIGN(std::unique_ptr<VfioShadow> shadow, VfioShadow::Create(host, system));
  Boot();
  const uint64_t pt = tables_->NewTable();
  Attach(kEdu, 1, pt);
  ASSERT_OK(unit_->RegisterNotifier(kEdu, shadow.get()));
  std::mt19937_64 rng(9);
  std::map<uint64_t, uint64_t> want;  // 4 KiB IOVA page -> guest-physical page.
  for (int step = 0; step < 3000; ++step) {
    const uint64_t iova = (rng() % 4096) << 12;
    if (want.count(iova) && rng() % 2) {
      tables_->UnmapPage(pt, iova, 0x1000);
      want.erase(iova);
    } else if (!want.count(iova)) {
      const uint64_t gpa = (0x1000000 + (rng() % 4096 << 12));
      tables_->MapPage(pt, iova, 0x1000, gpa, kRw);
      want[iova] = gpa;
    } else {
      continue;
    }
    switch (rng() % 10) {
      case 0:
        ASSERT_TRUE(Submit({{(1 << 16) | 0x22, 0}}));
        break;  // Domain.
      case 1:
        ASSERT_TRUE(Submit({{0x12, 0}}));
        break;  // Global.
      default:
        Psi(1, iova, 0);
        break;
    }
  }
  uint64_t pages = 0;
  for (const auto& [iova, m] : shadow->host_mappings()) {
    for (uint64_t off = 0; off < m.size; off += 0x1000) {
      auto it = want.find(iova + off);
      ASSERT_NE(it, want.end()) << "stale host mapping at " << std::hex << iova + off;
      EXPECT_EQ(it->second, m.translated + off);
      ++pages;
    }
  }
  EXPECT_EQ(pages, want.size()) << "a guest mapping missing from the host";
  Detach(kEdu, 1);
  EXPECT_EQ(shadow->host_mappings().size(), 0u) << "nothing stays mapped after the detach";
  ASSERT_OK(unit_->UnregisterNotifier(kEdu, shadow.get()));
}

}  // namespace
}  // namespace vmmkit::iommu::vtd
