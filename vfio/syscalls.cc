#include "vfio/syscalls.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace vmmkit::vfio {
namespace {

class KernelSyscalls : public VfioSyscalls {
 public:
  int Open(const char* path, int flags) override {
    const int fd = ::open(path, flags | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
  }
  int Ioctl(int fd, unsigned long request, uintptr_t arg) override {
    const int ret = ::ioctl(fd, request, arg);
    return ret < 0 ? -errno : ret;
  }
  int64_t Pread(int fd, void* buf, size_t len, uint64_t offset) override {
    const ssize_t n = ::pread(fd, buf, len, static_cast<off_t>(offset));
    return n < 0 ? -errno : n;
  }
  int64_t Pwrite(int fd, const void* buf, size_t len, uint64_t offset) override {
    const ssize_t n = ::pwrite(fd, buf, len, static_cast<off_t>(offset));
    return n < 0 ? -errno : n;
  }
  void* Mmap(size_t len, int prot, int fd, uint64_t offset, int* err) override {
    void* p = ::mmap(nullptr, len, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
    if (p == MAP_FAILED) *err = errno;
    return p;
  }
  void Munmap(void* addr, size_t len) override { ::munmap(addr, len); }
};

}  // namespace

VfioSyscalls& RealVfioSyscalls() {
  static KernelSyscalls* kernel = new KernelSyscalls();  // Never destroyed: used until exit.
  return *kernel;
}

}  // namespace vmmkit::vfio
