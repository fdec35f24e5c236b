// File: vfio/testing/fake_vfio_kernel.h
// -----------------------------------------------------------------------------
// Testonly: an in-memory VFIO + iommufd kernel behind VfioSyscalls, for what the real kernels this
// project runs on cannot do (sPAPR TCE v2, iommufd, device cdevs) and for error paths that cannot
// be provoked on demand (ENOMEM from the memlock limit, EBUSY, a failure on the Nth map).
//
// It follows the kernel's rules where vfio/ relies on them: DMA overlap -> EEXIST, unmap reports
// what it removed and refuses to bisect a mapping (type1) or says ENOENT (iommufd), a group leaves
// its container only with its devices closed, an IOAS with attached devices cannot be destroyed,
// a cdev does nothing before it is bound. Its syscalls are serialized (any thread may make them).
// Every fd it hands out is a real fd (of /dev/null), so
// ScopedFd can close it; the fake learns of closes lazily (see OpenFds()).
//
// Paths: /dev/vfio/vfio (container), /dev/vfio/<N> (group N, if in `groups`), /dev/iommu (if
// has_iommufd), /dev/vfio/devices/<name> (a device's cdev, if in `devices`).

#ifndef VMMKIT_VFIO_TESTING_FAKE_VFIO_KERNEL_H_
#define VMMKIT_VFIO_TESTING_FAKE_VFIO_KERNEL_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "vfio/syscalls.h"

namespace vmmkit::vfio::testing {

class FakeVfioKernel : public VfioSyscalls {
 public:
  struct Mapping {
    uint64_t size;
    uint64_t vaddr;
    uint32_t flags;
  };
  struct Container {
    std::optional<uint32_t> iommu_type;
    std::map<uint64_t, Mapping> mappings;     // iova -> mapping (type1 and sPAPR).
    std::map<uint64_t, uint64_t> registered;  // sPAPR: vaddr -> size.
    std::map<uint64_t, uint64_t> windows;     // sPAPR: bus address -> size.
    int enable_calls = 0;                     // VFIO_IOMMU_ENABLE (sPAPR v2 must not call it).
  };
  struct Region {
    bool absent = false;  // VFIO_DEVICE_GET_REGION_INFO says EINVAL (e.g. VGA on a non-VGA device).
    uint32_t flags = 0;
    uint64_t size = 0;
    std::optional<std::vector<std::pair<uint64_t, uint64_t>>> sparse;  // (offset, size) areas.
    bool msix_mappable = false;
    std::vector<uint8_t> data;  // Contents for pread/pwrite/mmap (resized to `size` on use).
  };
  struct Irq {
    uint32_t flags = 0;
    uint32_t count = 0;
  };
  struct IrqSet {
    uint32_t flags, index, start, count;
    std::vector<int32_t> fds;
  };
  struct Device {
    int group = -1;
    uint32_t flags = 0;
    std::vector<Region> regions;
    std::vector<Irq> irqs;
    std::vector<std::pair<uint32_t, std::string>> hot_reset_deps;  // (group, "ssss:bb:dd.f").
    // State.
    std::vector<IrqSet> irq_sets;
    int resets = 0;
    int hot_resets = 0;
    std::vector<int32_t> hot_reset_group_fds;
    std::optional<int> bound_iommufd;
    std::optional<uint32_t> attached_ioas;
  };
  struct Group {
    bool viable = true;
    std::optional<int> container_fd;
  };
  struct Ioas {
    std::map<uint64_t, Mapping> mappings;
    int attached_devices = 0;
  };

  // A PCI device with a config region, a 1 MiB mmappable BAR0, no VGA region and INTx/MSI/MSI-X
  // IRQ indexes.
  static Device PciDevice(int group);

  int Open(const char* path, int flags) override;
  int Ioctl(int fd, unsigned long request, uintptr_t arg) override;
  int64_t Pread(int fd, void* buf, size_t len, uint64_t offset) override;
  int64_t Pwrite(int fd, const void* buf, size_t len, uint64_t offset) override;
  void* Mmap(size_t len, int prot, int fd, uint64_t offset, int* err) override;
  void Munmap(void* addr, size_t len) override;

  // The most recently opened container (tests with one container use this).
  Container& container() { return containers_.at(last_container_fd_); }
  // Every container ever opened, by fd, in the order opened.
  const std::map<int, Container>& containers() const { return containers_; }
  // The fds this fake handed out that are still open, by kind ("container", "group", "device",
  // "iommufd", "cdev").
  std::map<std::string, int> OpenFds();

  // Configuration.
  int api_version = 0;
  std::set<uint32_t> extensions = {1, 3};  // Type1 and Type1v2.
  int open_errno = 0;
  std::map<unsigned long, int> fail_with;  // ioctl request -> errno, every time.
  // ioctl request -> (successful calls to let through first, errno): fails once, then clears.
  std::map<unsigned long, std::pair<int, int>> fail_after;
  uint64_t page_sizes = 0x40201000;  // 4 KiB, 2 MiB, 1 GiB.
  std::vector<std::pair<uint64_t, uint64_t>> iova_ranges = {{0, 0xfedfffff}, {0xfef00000, ~0ull}};
  std::optional<uint32_t> dma_avail = 65535;
  // Raw capability bytes for VFIO_IOMMU_GET_INFO instead of the ones built from the fields above
  // (for malformed-chain tests); offsets inside are relative to the start of the info struct.
  std::optional<std::vector<uint8_t>> raw_caps;
  std::optional<uint32_t> raw_cap_offset;
  // sPAPR: the default 32-bit window and dynamic windows.
  uint32_t spapr_dma32_start = 0;
  uint32_t spapr_dma32_size = 1u << 30;
  uint32_t spapr_max_windows = 2;
  uint64_t spapr_ddw_page_sizes = 0x1011000;  // 4 KiB, 64 KiB, 16 MiB.
  // iommufd.
  bool has_iommufd = true;
  std::vector<std::pair<uint64_t, uint64_t>> ioas_ranges = {{0, 0xfedfffff},
                                                            {0xfef00000, (1ull << 48) - 1}};
  std::map<int, Group> groups;
  std::map<std::string, Device> devices;

  // State.
  std::vector<std::string> opened;
  std::vector<unsigned long> calls;
  std::map<uint32_t, Ioas> ioases;
  std::vector<std::pair<void*, size_t>> mmaps;  // Live mmaps.

 private:
  enum class Kind { kContainer, kGroup, kDevice, kIommufd, kCdev };
  struct FdInfo {
    Kind kind;
    int group = -1;    // kGroup.
    std::string name;  // kDevice, kCdev.
  };
  int NewFd(int flags, FdInfo info);
  int ContainerIoctl(int fd, unsigned long request, uintptr_t arg);
  int GroupIoctl(const FdInfo& info, unsigned long request, uintptr_t arg);
  int DeviceIoctl(const FdInfo& info, unsigned long request, uintptr_t arg);
  int IommufdIoctl(int fd, unsigned long request, uintptr_t arg);
  int Type1Info(uintptr_t arg);
  int SpaprInfo(uintptr_t arg);
  int RegionInfo(const Device& dev, uintptr_t arg);
  int MapInto(std::map<uint64_t, Mapping>& mappings, uint64_t iova, uint64_t size, uint64_t vaddr,
              uint32_t flags);
  Region* RegionAt(int fd, uint64_t offset, size_t len, uint64_t* within);
  bool FdOpen(int fd) const;
  void ForgetClosedFds();

  // The syscalls may come from several threads at once, as the kernel's do (a VMM closing a
  // device on a helper while it unmaps guest RAM); the test's own reads of the fields above
  // happen while no syscall runs.
  std::recursive_mutex mu_;
  std::map<int, FdInfo> fds_;
  std::map<int, Container> containers_;
  int last_container_fd_ = -1;
  uint32_t next_ioas_ = 1;
  uint32_t next_devid_ = 100;
};

}  // namespace vmmkit::vfio::testing

#endif  // VMMKIT_VFIO_TESTING_FAKE_VFIO_KERNEL_H_
