#include "memory/address_space.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Records every callback into a shared journal as "<listener> +<region>" / "<listener> -<region>".
class RecordingListener : public MemoryListener {
 public:
  RecordingListener(std::string name, int priority, std::vector<std::string>* journal)
      : name_(std::move(name)), priority_(priority), journal_(journal) {}
  int priority() const override { return priority_; }
  std::string name() const override { return name_; }
  absl::Status RegionAdd(const AddressSpaceRegion& r) override {
    if (r.name == fail_on_) return absl::ResourceExhaustedError("out of memlock");
    journal_->push_back(absl::StrCat(name_, " +", r.name));
    if (r.kind == RegionKind::kRam) {
      EXPECT_NE(r.host_address(), nullptr);
    } else {
      EXPECT_EQ(r.host_address(), nullptr);
    }
    return absl::OkStatus();
  }
  void RegionDel(const AddressSpaceRegion& r) override {
    journal_->push_back(absl::StrCat(name_, " -", r.name));
  }
  std::string fail_on_;

 private:
  std::string name_;
  int priority_;
  std::vector<std::string>* journal_;
};

std::shared_ptr<GuestRegion> Ram(uint64_t start, uint64_t size) {
  auto r = GuestRegion::Create(GuestAddress(start), size);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : nullptr;
}

TEST(AddressSpaceTest, PreRegistrationSeesAddsFirstAndDeletesLast) {
  std::vector<std::string> j;
  RecordingListener map("map", MemoryListener::kDefault, &j);
  RecordingListener prereg("prereg", MemoryListener::kPreRegistration, &j);
  AddressSpace as("system");
  // Registered in the "wrong" order on purpose: priority decides, not registration order.
  ASSERT_OK(as.RegisterListener(&map));
  ASSERT_OK(as.RegisterListener(&prereg));
  ASSERT_OK(as.AddRam("ram", Ram(0, 0x10000)));
  ASSERT_OK(as.Remove(GuestAddress(0)));
  EXPECT_THAT(j, ElementsAre("prereg +ram", "map +ram", "map -ram", "prereg -ram"));
}

TEST(AddressSpaceTest, DeviceMemoryIsItsOwnKindWithItsHostMapping) {
  AddressSpace as("system");
  auto bar = Ram(0xc0000000, 0x1000);
  ASSERT_OK(as.AddDeviceMemory("bar0", bar));
  const AddressSpaceRegion* r = as.Find(GuestAddress(0xc0000800));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->kind, RegionKind::kDeviceMemory);
  EXPECT_EQ(r->host_address(), bar->host_address());
  EXPECT_EQ(r->ToString(), "bar0 [0xc0000000, 0xc0000fff] device memory");
  EXPECT_THAT(as.AddDeviceMemory("none", nullptr),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("null device memory")));
  EXPECT_THAT(as.AddDeviceMemory("overlap", Ram(0xc0000000, 0x1000)),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(AddressSpaceTest, EqualPrioritiesKeepRegistrationOrder) {
  std::vector<std::string> j;
  RecordingListener a("a", 0, &j), b("b", 0, &j), c("c", 0, &j);
  AddressSpace as("system");
  ASSERT_OK(as.RegisterListener(&a));
  ASSERT_OK(as.RegisterListener(&b));
  ASSERT_OK(as.RegisterListener(&c));
  ASSERT_OK(as.AddMmio("uart", GuestAddress(0x1000), 8));
  ASSERT_OK(as.Remove(GuestAddress(0x1000)));
  EXPECT_THAT(j, ElementsAre("a +uart", "b +uart", "c +uart", "c -uart", "b -uart", "a -uart"));
}

TEST(AddressSpaceTest, LateListenerGetsReplayAndUnregisterReplaysRemovals) {
  std::vector<std::string> j;
  AddressSpace as("system");
  ASSERT_OK(as.AddRam("high", Ram(0x100000, 0x1000)));
  ASSERT_OK(as.AddRam("low", Ram(0, 0x1000)));
  ASSERT_OK(as.AddMmio("mmio", GuestAddress(0x2000), 0x100));
  RecordingListener late("late", 0, &j);
  ASSERT_OK(as.RegisterListener(&late));
  EXPECT_THAT(j, ElementsAre("late +low", "late +mmio", "late +high"));  // Address order.
  j.clear();
  ASSERT_OK(as.UnregisterListener(&late));
  EXPECT_THAT(j, ElementsAre("late -high", "late -mmio", "late -low"));
  j.clear();
  ASSERT_OK(as.Remove(GuestAddress(0)));
  EXPECT_THAT(j, IsEmpty());  // Unregistered listeners hear nothing more.
  EXPECT_THAT(as.UnregisterListener(&late), StatusIs(absl::StatusCode::kNotFound));
}

TEST(AddressSpaceTest, RemoveListenerHandsTheReplayToTheCaller) {
  std::vector<std::string> j;
  AddressSpace as("system");
  ASSERT_OK(as.AddRam("low", Ram(0, 0x1000)));
  ASSERT_OK(as.AddMmio("mmio", GuestAddress(0x2000), 0x100));
  RecordingListener slow("slow", 0, &j);
  ASSERT_OK(as.RegisterListener(&slow));
  j.clear();
  ASSERT_OK_AND_ASSIGN(std::vector<AddressSpaceRegion> seen, as.RemoveListener(&slow));
  EXPECT_THAT(j, IsEmpty()) << "not told";
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].name, "low");
  EXPECT_NE(seen[0].host_address(), nullptr) << "the memory stays valid for the replay";
  EXPECT_EQ(seen[1].name, "mmio");
  ASSERT_OK(as.Remove(GuestAddress(0)));
  EXPECT_THAT(j, IsEmpty()) << "forgotten: later changes do not reach it";
  EXPECT_THAT(as.RemoveListener(&slow), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(as.UnregisterListener(&slow), StatusIs(absl::StatusCode::kNotFound));
}

TEST(AddressSpaceTest, FailedAddRollsBackEarlierListeners) {
  std::vector<std::string> j;
  RecordingListener prereg("prereg", MemoryListener::kPreRegistration, &j);
  RecordingListener map("vfio-map", 0, &j);
  RecordingListener after("after", 10, &j);
  map.fail_on_ = "ram2";
  AddressSpace as("system");
  ASSERT_OK(as.RegisterListener(&prereg));
  ASSERT_OK(as.RegisterListener(&map));
  ASSERT_OK(as.RegisterListener(&after));
  EXPECT_THAT(as.AddRam("ram2", Ram(0, 0x1000)),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("address space system: add ram2 [0x0, 0xfff] RAM: vfio-map: out "
                                 "of memlock")));
  EXPECT_THAT(j, ElementsAre("prereg +ram2", "prereg -ram2"));  // "after" never saw it.
  EXPECT_THAT(as.regions(), IsEmpty());
  EXPECT_EQ(as.Find(GuestAddress(0)), nullptr);
}

TEST(AddressSpaceTest, FailedReplayRollsBackAndDoesNotRegister) {
  std::vector<std::string> j;
  AddressSpace as("system");
  ASSERT_OK(as.AddRam("a", Ram(0, 0x1000)));
  ASSERT_OK(as.AddRam("b", Ram(0x1000, 0x1000)));
  ASSERT_OK(as.AddRam("c", Ram(0x2000, 0x1000)));
  RecordingListener l("l", 0, &j);
  l.fail_on_ = "c";
  EXPECT_THAT(as.RegisterListener(&l),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("replay c")));
  EXPECT_THAT(j, ElementsAre("l +a", "l +b", "l -b", "l -a"));
  j.clear();
  ASSERT_OK(as.AddMmio("d", GuestAddress(0x10000), 0x10));
  EXPECT_THAT(j, IsEmpty());
  l.fail_on_.clear();
  ASSERT_OK(as.RegisterListener(&l));  // Retrying after the cause is fixed works.
}

TEST(AddressSpaceTest, RejectsOverlapsAtEveryEdge) {
  AddressSpace as("system");
  ASSERT_OK(as.AddMmio("mid", GuestAddress(0x2000), 0x1000));
  EXPECT_THAT(as.AddMmio("left", GuestAddress(0x1000), 0x1001),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("overlaps mid")));
  EXPECT_THAT(as.AddMmio("right", GuestAddress(0x2fff), 0x10),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(as.AddMmio("inside", GuestAddress(0x2100), 0x10),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(as.AddMmio("around", GuestAddress(0), 0x10000),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_OK(as.AddMmio("left", GuestAddress(0x1000), 0x1000));  // Adjacent is fine.
  EXPECT_OK(as.AddMmio("right", GuestAddress(0x3000), 0x1000));
  EXPECT_EQ(as.regions().size(), 3u);
}

TEST(AddressSpaceTest, BadArguments) {
  AddressSpace as("system");
  EXPECT_THAT(as.AddMmio("zero", GuestAddress(0), 0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(as.AddMmio("wrap", GuestAddress(~uint64_t{0}), 2),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("wraps past 2^64")));
  EXPECT_OK(as.AddMmio("top", GuestAddress(~uint64_t{0}), 1));
  EXPECT_THAT(as.AddRam("null", nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(as.Remove(GuestAddress(0x5000)),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no region starts at 0x5000")));
  EXPECT_THAT(as.RegisterListener(nullptr), StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<std::string> j;
  RecordingListener l("l", 0, &j);
  ASSERT_OK(as.RegisterListener(&l));
  EXPECT_THAT(as.RegisterListener(&l), StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(AddressSpaceTest, FindAndRegions) {
  AddressSpace as("system");
  auto ram = Ram(0x10000, 0x2000);
  ASSERT_OK(as.AddRam("ram", ram));
  ASSERT_OK(as.AddMmio("ioapic", GuestAddress(0xfec00000), 0x1000));
  const AddressSpaceRegion* r = as.Find(GuestAddress(0x11fff));
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->kind, RegionKind::kRam);
  EXPECT_EQ(r->host_address(), ram->host_address());
  EXPECT_EQ(as.Find(GuestAddress(0x12000)), nullptr);
  ASSERT_NE(as.Find(GuestAddress(0xfec00000)), nullptr);
  EXPECT_EQ(as.Find(GuestAddress(0xfec00000))->ToString(), "ioapic [0xfec00000, 0xfec00fff] MMIO");
  EXPECT_EQ(as.regions()[0].name, "ram");
}

}  // namespace
}  // namespace vmmkit
