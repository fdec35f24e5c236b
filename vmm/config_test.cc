#include "vmm/config.h"

#include <fstream>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vmmkit::vmm {
namespace {

using ::testing::HasSubstr;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TEST_TMPDIR");
    kernel_ = std::string(tmp ? tmp : "/tmp") + "/kernel";
    std::ofstream(kernel_) << "not empty";
  }
  RawConfig Valid() const {
    return RawConfig{.kernel = kernel_, .memory_mib = "512", .cpus = "2", .serial = "stdio"};
  }
  std::string kernel_;
};

TEST_F(ConfigTest, AcceptsAValidConfiguration) {
  ASSERT_OK_AND_ASSIGN(VmmConfig c, ValidateConfig(Valid()));
  EXPECT_EQ(c.memory_bytes, 512u << 20);
  EXPECT_EQ(c.cpus, 2u);
  EXPECT_EQ(c.serial, SerialMode::kStdio);
  EXPECT_FALSE(c.prefault);
  EXPECT_EQ(c.seccomp, sandbox::SeccompMode::kOn) << "confinement is on by default";
  EXPECT_TRUE(c.landlock);
  RawConfig loose = Valid();
  loose.seccomp = "log";
  loose.landlock = "off";
  ASSERT_OK_AND_ASSIGN(c, ValidateConfig(loose));
  EXPECT_EQ(c.seccomp, sandbox::SeccompMode::kLog);
  EXPECT_FALSE(c.landlock);
  RawConfig file = Valid();
  file.serial = "file:/tmp/console.log";
  ASSERT_OK_AND_ASSIGN(c, ValidateConfig(file));
  EXPECT_EQ(c.serial_path, "/tmp/console.log");
  file.prefault = true;
  ASSERT_OK_AND_ASSIGN(c, ValidateConfig(file));
  EXPECT_TRUE(c.prefault);
}

TEST_F(ConfigTest, EachBadValueNamesItsFlag) {
  struct Case {
    void (*mutate)(RawConfig&);
    const char* message;
  };
  const Case cases[] = {
      {[](RawConfig& r) { r.kernel = ""; }, "--kernel is required"},
      {[](RawConfig& r) { r.kernel = "/nonexistent"; }, "--kernel=/nonexistent: No such file"},
      {[](RawConfig& r) { r.kernel = "/tmp"; }, "not a regular file"},
      {[](RawConfig& r) { r.initrd = "/nonexistent/initrd"; }, "--initrd=/nonexistent/initrd"},
      {[](RawConfig& r) { r.memory_mib = "abc"; }, "--memory=abc: expected an integer from 64"},
      {[](RawConfig& r) { r.memory_mib = "63"; }, "--memory=63"},
      {[](RawConfig& r) { r.memory_mib = "-5"; }, "--memory=-5"},
      {[](RawConfig& r) { r.cpus = "0"; }, "--cpus=0: expected an integer from 1 to 254"},
      {[](RawConfig& r) { r.cpus = "255"; }, "--cpus=255"},
      {[](RawConfig& r) { r.serial = "tcp:1"; },
       "--serial=tcp:1: expected stdio, file:PATH or none"},
      {[](RawConfig& r) { r.serial = "file:"; }, "--serial=file:"},
      {[](RawConfig& r) { r.cmdline = std::string("a\0b", 3); }, "NUL"},
      {[](RawConfig& r) { r.memory_backing = "shm"; }, "--memory_backing=shm: expected memfd"},
      {[](RawConfig& r) { r.irqchip = "userspace"; },
       "--irqchip=userspace: expected kernel or split"},
      {[](RawConfig& r) { r.seccomp = "strict"; }, "--seccomp=strict: expected on, log or off"},
      {[](RawConfig& r) { r.landlock = "1"; }, "--landlock=1: expected on or off"},
      {[](RawConfig& r) { r.api_socket = std::string(120, 'x'); }, "longer than a socket path"},
      {[](RawConfig& r) { r.devices = {"virtio-net,host=00:03.0"}; },
       "--device=virtio-net,host=00:03.0: unknown device type 'virtio-net'"},
      {[](RawConfig& r) { r.devices = {"vfio-pci"}; }, "host=BDF is required"},
      {[](RawConfig& r) { r.devices = {"vfio-pci,host=00:03"}; }, "expected [DDDD:]BB:DD.F"},
      {[](RawConfig& r) { r.devices = {"vfio-pci,host=00:20.0"}; }, "expected [DDDD:]BB:DD.F"},
      {[](RawConfig& r) { r.devices = {"vfio-pci,host=00:03.8"}; }, "expected [DDDD:]BB:DD.F"},
      {[](RawConfig& r) { r.devices = {"vfio-pci,host=zz:03.0"}; }, "expected [DDDD:]BB:DD.F"},
      {[](RawConfig& r) { r.devices = {"vfio-pci,host=00:03.0,rombar=0"}; },
       "unknown option 'rombar'"},
      {[](RawConfig& r) { r.devices = {"vfio-pci,host=00:03.0,id=a b"}; }, "id must be"},
      {[](RawConfig& r) {
         r.devices = {"vfio-pci,host=00:03.0", "vfio-pci,host=0000:00:03.0"};
       },
       "host 0000:00:03.0 is already used"},
      {[](RawConfig& r) {
         r.devices = {"vfio-pci,host=00:03.0,id=x", "vfio-pci,host=00:04.0,id=x"};
       },
       "id x is already used"},
      {[](RawConfig& r) { r.devices.assign(17, "vfio-pci,host=00:03.0"); }, "at most 16 devices"},
      {[](RawConfig& r) { r.kernel_entry = "32bit"; }, "--kernel_entry=32bit: expected as-is"},
      {[](RawConfig& r) {
         r.devices = {"vfio-pci,host=00:03.0"};
         r.iommu = true;
         r.iommu_caching_mode = false;
       },
       "--device behind --iommu needs --iommu_caching_mode"},
  };
  for (const Case& c : cases) {
    RawConfig r = Valid();
    c.mutate(r);
    EXPECT_THAT(ValidateConfig(r),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(c.message)));
  }
}

TEST_F(ConfigTest, PassthroughDevicesAreParsedAndNamed) {
  RawConfig r = Valid();
  r.devices = {"vfio-pci,host=00:03.0", "vfio-pci,id=gpu,host=0000:0A:1f.7"};
  ASSERT_OK_AND_ASSIGN(VmmConfig c, ValidateConfig(r));
  ASSERT_EQ(c.devices.size(), 2u);
  EXPECT_EQ(c.devices[0].id, "hostdev0");
  EXPECT_EQ(c.devices[0].host_bdf, "0000:00:03.0");
  EXPECT_EQ(c.devices[1].id, "gpu");
  EXPECT_EQ(c.devices[1].host_bdf, "0000:0a:1f.7");
  r.iommu = true;
  ASSERT_OK_AND_ASSIGN(c, ValidateConfig(r));
  EXPECT_TRUE(c.iommu_caching_mode) << "on by default: what passthrough needs";
  EXPECT_EQ(c.kernel_entry, KernelEntry::kAsIs);
  r.kernel_entry = "pvh";
  ASSERT_OK_AND_ASSIGN(c, ValidateConfig(r));
  EXPECT_EQ(c.kernel_entry, KernelEntry::kPvh);
  r.kernel_entry = "64bit";
  ASSERT_OK_AND_ASSIGN(c, ValidateConfig(r));
  EXPECT_EQ(c.kernel_entry, KernelEntry::k64Bit);
}

TEST_F(ConfigTest, DisksAreParsedNamedAndCheckedOnce) {
  RawConfig r = Valid();
  // The kernel file stands in for an image: any readable regular file.
  r.disks = {"path=" + kernel_, "id=data,path=" + kernel_ + ",readonly=on,queues=4"};
  EXPECT_THAT(ValidateConfig(r).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("already used")));
  const std::string other = kernel_ + ".2";
  std::ofstream(other) << "x";
  r.disks[1] = "id=data,path=" + other + ",readonly=on,queues=4,engine=io_uring";
  r.disk_dirs = {std::getenv("TEST_TMPDIR")};
  ASSERT_OK_AND_ASSIGN(VmmConfig c, ValidateConfig(r));
  ASSERT_EQ(c.disks.size(), 2u);
  EXPECT_EQ(c.disks[0].id, "disk0");
  EXPECT_EQ(c.disks[0].path, kernel_);
  EXPECT_FALSE(c.disks[0].read_only);
  EXPECT_EQ(c.disks[0].queues, 1);
  EXPECT_EQ(c.disks[1].id, "data");
  EXPECT_TRUE(c.disks[1].read_only);
  EXPECT_EQ(c.disks[1].queues, 4);
  EXPECT_EQ(c.disks[0].engine, virtio_blk::kDefaultEngine);
  EXPECT_EQ(c.disks[1].engine, virtio_blk::BlockEngine::kIoUring);
  EXPECT_EQ(c.disk_dirs.size(), 1u);

  const std::pair<std::string, const char*> bad[] = {
      {"readonly=on", "path=FILE is required"},
      {"path=/nonexistent.img", "No such file"},
      {"path=" + kernel_ + ",readonly=yes", "readonly must be on or off"},
      {"path=" + kernel_ + ",queues=0", "from 1 to 16"},
      {"path=" + kernel_ + ",queues=17", "from 1 to 16"},
      {"path=" + kernel_ + ",id=a b", "id must be"},
      {"path=" + kernel_ + ",cache=none", "unknown option 'cache'"},
      {"path=" + kernel_ + ",engine=aio", "engine 'aio' (threads or io_uring)"},
  };
  for (const auto& [text, message] : bad) {
    RawConfig b = Valid();
    b.disks = {text};
    EXPECT_THAT(ValidateConfig(b).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)))
        << text;
  }
  RawConfig clash = Valid();
  clash.devices = {"vfio-pci,host=00:03.0,id=x"};
  clash.disks = {"id=x,path=" + kernel_};
  EXPECT_THAT(ValidateConfig(clash).status(), StatusIs(absl::StatusCode::kInvalidArgument));
  RawConfig dir = Valid();
  dir.disk_dirs = {kernel_};
  EXPECT_THAT(ValidateConfig(dir).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a directory")));
  RawConfig many = Valid();
  for (int i = 0; i <= 16; ++i) many.disks.push_back("path=" + kernel_);
  EXPECT_THAT(ValidateConfig(many).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at most 16")));
}

TEST_F(ConfigTest, NetsAreParsedNamedAndCheckedOnce) {
  RawConfig r = Valid();
  r.nets = {"tap=vmtap0,rx_bytes=1000000,tx_packets=500",
            "id=uplink,fd=5:6,mac=02:00:00:00:00:0a,vhost=on"};
  ASSERT_OK_AND_ASSIGN(VmmConfig c, ValidateConfig(r));
  ASSERT_EQ(c.nets.size(), 2u);
  EXPECT_EQ(c.nets[0].id, "net0");
  EXPECT_EQ(c.nets[0].tap, "vmtap0");
  EXPECT_EQ(c.nets[0].queue_pairs, 1);
  EXPECT_EQ(c.nets[0].mac, (std::array<uint8_t, 6>{0x52, 0x54, 0, 0x12, 0x34, 0x56}));
  EXPECT_EQ(c.nets[1].id, "uplink");
  EXPECT_EQ(c.nets[1].fds, (std::vector<int>{5, 6}));
  EXPECT_EQ(c.nets[1].queue_pairs, 2);
  EXPECT_EQ(c.nets[1].mac, (std::array<uint8_t, 6>{2, 0, 0, 0, 0, 0x0a}));
  EXPECT_FALSE(c.nets[0].vhost);
  EXPECT_EQ(c.nets[0].limits.rx_bytes, 1000000u);
  EXPECT_EQ(c.nets[0].limits.tx_packets, 500u);
  EXPECT_EQ(c.nets[0].limits.tx_bytes, 0u);
  EXPECT_FALSE(c.nets[1].limits.any());
  EXPECT_TRUE(c.nets[1].vhost);

  const std::pair<std::string, const char*> bad[] = {
      {"mac=02:00:00:00:00:01", "one of tap=NAME or fd=N"},
      {"tap=a,fd=4", "one of tap=NAME or fd=N"},
      {"tap=", "an interface name"},
      {"tap=0123456789abcdef", "an interface name"},
      {"tap=a/b", "an interface name"},
      {"fd=2", "from 3 to 65535"},
      {"fd=4:x", "tap fd"},
      {"fd=4:5,queues=3", "queues must match"},
      {"tap=t,queues=17", "from 1 to 16"},
      {"tap=t,mac=01:00:00:00:00:01", "multicast"},
      {"tap=t,mac=52:54:00:12:34", "six two-digit hex bytes"},
      {"tap=t,mac=52:54:00:12:34:zz", "six two-digit hex bytes"},
      {"tap=t,id=a b", "id must be"},
      {"tap=t,vhost=yes", "vhost must be on or off"},
      {"tap=t,vhost=on,tx_bytes=100", "rate limits need vmm's data path"},
      {"tap=t,rx_packets=0", "from 1 to"},
      {"tap=t,rate=1", "unknown option 'rate'"},
  };
  for (const auto& [text, message] : bad) {
    RawConfig b = Valid();
    b.nets = {text};
    EXPECT_THAT(ValidateConfig(b).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)))
        << text;
  }
  for (const auto& twins : std::vector<std::vector<std::string>>{
           {"tap=a", "tap=a"},
           {"tap=a,id=x", "tap=b,id=x"},
           {"tap=a,mac=02:00:00:00:00:01", "tap=b,mac=02:00:00:00:00:01"}}) {
    RawConfig b = Valid();
    b.nets = twins;
    EXPECT_THAT(ValidateConfig(b).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("already used")));
  }
  RawConfig clash = Valid();
  clash.disks = {"id=x,path=" + kernel_};
  clash.nets = {"id=x,tap=a"};
  EXPECT_THAT(ValidateConfig(clash).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("already used")));
}

TEST_F(ConfigTest, VsockIsParsed) {
  RawConfig r = Valid();
  ASSERT_OK_AND_ASSIGN(VmmConfig none, ValidateConfig(r));
  EXPECT_FALSE(none.vsock.has_value());
  r.vsock = "cid=42";
  ASSERT_OK_AND_ASSIGN(VmmConfig c, ValidateConfig(r));
  ASSERT_TRUE(c.vsock.has_value());
  EXPECT_EQ(c.vsock->cid, 42u);
  EXPECT_EQ(c.vsock->id, "vsock0");
  const std::pair<std::string, const char*> bad[] = {
      {"id=v", "cid=N is required"},   {"cid=2", "from 3 to 4294967294"},
      {"cid=4294967295", "from 3 to"}, {"cid=x", "vsock cid"},
      {"cid=3,id=a b", "id must be"},  {"cid=3,port=1", "unknown option 'port'"},
  };
  for (const auto& [text, message] : bad) {
    RawConfig b = Valid();
    b.vsock = text;
    EXPECT_THAT(ValidateConfig(b).status(),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(message)))
        << text;
  }
  RawConfig clash = Valid();
  clash.nets = {"tap=a,id=x"};
  clash.vsock = "cid=3,id=x";
  EXPECT_THAT(ValidateConfig(clash).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("already used")));
}

TEST_F(ConfigTest, EmptyKernelFileIsRejected) {
  std::ofstream(kernel_, std::ios::trunc).close();
  EXPECT_THAT(ValidateConfig(Valid()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
}

}  // namespace
}  // namespace vmmkit::vmm
