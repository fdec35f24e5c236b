// Fuzzes vmm's command-line validation with arbitrary flag values (--memory, --cpus, --serial,
// --memory_backing, --irqchip, --api_socket, --device, ...), with a kernel that exists so that
// validation goes past the first check. Checked: nothing crashes; a configuration it accepts is
// within the documented limits (memory 64 MiB-1 TiB, 1-254 vCPUs, at most 16 devices, each with
// a normalized host address), and one it refuses names a flag or says what is wrong.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tools/testing/fuzz_input.h"
#include "vmm/config.h"

namespace vmmkit::vmm {
namespace {

std::string TakeString(fuzzing::FuzzInput& in, const char* alphabet) {
  std::string s;
  const size_t len = in.Take<uint8_t>() % 24;
  const size_t n = std::char_traits<char>::length(alphabet);
  for (size_t i = 0; i < len; ++i) s += alphabet[in.Take<uint8_t>() % n];
  return s;
}

// A file that exists, for --kernel (validation checks only that): made once, removed at exit.
const std::string& Kernel() {
  struct File {
    File() {
      char name[] = "/tmp/config_fuzz_kernelXXXXXX";
      const int fd = ::mkstemp(name);
      if (fd >= 0) {
        (void)!::write(fd, "not a kernel", 12);
        ::close(fd);
        path = name;
      }
    }
    ~File() {
      if (!path.empty()) ::unlink(path.c_str());
    }
    std::string path;
  };
  static const File file;
  return file.path;
}

void Run(const uint8_t* data, size_t size) {
  fuzzing::FuzzInput in(data, size);
  static constexpr char kNumbers[] = "0123456789-+x ";
  static constexpr char kWords[] = "stdiofile:nonekernelsplitmemfdhugetlbanonymous,=/";
  static constexpr char kDevice[] = "vfio-pcihost=0000:00:03.0,id=hp0abcdef.:/";
  RawConfig raw;
  raw.kernel = (in.Take<uint8_t>() & 1) ? Kernel() : TakeString(in, kWords);
  raw.memory_mib = TakeString(in, kNumbers);
  raw.cpus = TakeString(in, kNumbers);
  raw.serial = TakeString(in, kWords);
  raw.memory_backing = TakeString(in, kWords);
  raw.irqchip = TakeString(in, kWords);
  raw.cmdline = TakeString(in, kWords);
  if (in.Take<uint8_t>() & 1) raw.api_socket = TakeString(in, kWords);
  const size_t devices = in.Take<uint8_t>() % 20;
  for (size_t i = 0; i < devices; ++i) raw.devices.push_back(TakeString(in, kDevice));
  absl::StatusOr<VmmConfig> c = ValidateConfig(raw);
  if (c.ok()) {
    fuzzing::Require(
        c->memory_bytes >= (kMinMemoryMib << 20) && c->memory_bytes <= (kMaxMemoryMib << 20),
        "accepted memory out of range");
    fuzzing::Require(c->cpus >= 1 && c->cpus <= kMaxCpus, "accepted a vCPU count out of range");
    fuzzing::Require(c->devices.size() <= kMaxPassthroughDevices, "accepted too many devices");
    for (const PassthroughConfig& d : c->devices) {
      fuzzing::Require(d.host_bdf.size() == 12 && d.host_bdf[4] == ':' && d.host_bdf[7] == ':' &&
                           d.host_bdf[10] == '.',
                       "accepted a device without a normalized address");
    }
  } else {
    fuzzing::Require(!c.status().message().empty(), "a refusal that says nothing");
  }
}

}  // namespace
}  // namespace vmmkit::vmm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::vmm::Run(data, size);
  return 0;
}
