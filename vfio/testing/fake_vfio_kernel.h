// File: vfio/testing/fake_vfio_kernel.h
// -----------------------------------------------------------------------------
// Testonly: an in-memory VFIO type1 kernel behind VfioSyscalls. It keeps the container's IOMMU
// model and DMA mappings with the kernel's rules (overlap -> EEXIST, unmap reports what it
// removed, bisecting a mapping -> EINVAL) and lets tests inject any errno per ioctl.
// Open() hands out real fds (of /dev/null), so ScopedFd can close them safely.

#ifndef VMMKIT_VFIO_TESTING_FAKE_VFIO_KERNEL_H_
#define VMMKIT_VFIO_TESTING_FAKE_VFIO_KERNEL_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
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

  int Open(const char* path, int flags) override;
  int Ioctl(int fd, unsigned long request, uintptr_t arg) override;

  // Configuration.
  int api_version = 0;
  std::set<uint32_t> extensions = {1, 3};  // Type1 and Type1v2.
  int open_errno = 0;
  std::map<unsigned long, int> fail_with;  // ioctl request -> errno to return.
  uint64_t page_sizes = 0x40201000;        // 4 KiB, 2 MiB, 1 GiB.
  std::vector<std::pair<uint64_t, uint64_t>> iova_ranges = {{0, 0xfedfffff}, {0xfef00000, ~0ull}};
  std::optional<uint32_t> dma_avail = 65535;
  // Raw capability bytes to return instead of the ones built from the fields above (for
  // malformed-chain tests); offsets inside are relative to the start of the info struct.
  std::optional<std::vector<uint8_t>> raw_caps;
  std::optional<uint32_t> raw_cap_offset;

  // State.
  std::vector<std::string> opened;
  std::vector<unsigned long> calls;
  std::optional<uint32_t> iommu_type;
  std::map<uint64_t, Mapping> mappings;  // iova -> mapping.

 private:
  int GetInfo(uintptr_t arg);
  int Map(uintptr_t arg);
  int Unmap(uintptr_t arg);
};

}  // namespace vmmkit::vfio::testing

#endif  // VMMKIT_VFIO_TESTING_FAKE_VFIO_KERNEL_H_
