#include "vfio/syscalls.h"

#include <fcntl.h>
#include <sys/ioctl.h>

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
};

}  // namespace

VfioSyscalls& RealVfioSyscalls() {
  static KernelSyscalls* kernel = new KernelSyscalls();  // Never destroyed: used until exit.
  return *kernel;
}

}  // namespace vmmkit::vfio
