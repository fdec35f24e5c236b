#include "vmm/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace vmmkit::vmm {
namespace {

absl::Status CheckReadableFile(const std::string& flag, const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": ", std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", path, ": not a regular file"));
  }
  if (::access(path.c_str(), R_OK) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", path, ": ", std::strerror(errno)));
  }
  if (st.st_size == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag, "=", path, ": the file is empty"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ParseRange(const std::string& flag, const std::string& text, uint64_t min,
                                    uint64_t max) {
  uint64_t v;
  if (!absl::SimpleAtoi(text, &v) || v < min || v > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, "=", text, ": expected an integer from ", min, " to ", max));
  }
  return v;
}

}  // namespace

absl::StatusOr<VmmConfig> ValidateConfig(const RawConfig& raw) {
  VmmConfig c;
  if (raw.kernel.empty()) return absl::InvalidArgumentError("--kernel is required");
  if (absl::Status s = CheckReadableFile("kernel", raw.kernel); !s.ok()) return s;
  c.kernel_path = raw.kernel;
  if (!raw.initrd.empty()) {
    if (absl::Status s = CheckReadableFile("initrd", raw.initrd); !s.ok()) return s;
  }
  c.initrd_path = raw.initrd;
  if (raw.cmdline.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("--cmdline contains a NUL byte");
  }
  c.cmdline = raw.cmdline;
  absl::StatusOr<uint64_t> mib = ParseRange("memory", raw.memory_mib, kMinMemoryMib, kMaxMemoryMib);
  if (!mib.ok()) return mib.status();
  c.memory_bytes = *mib << 20;
  if (raw.memory_backing == "memfd") {
    c.memory_backing = GuestRegionBacking::kMemfd;
  } else if (raw.memory_backing == "anonymous") {
    c.memory_backing = GuestRegionBacking::kAnonymous;
  } else if (raw.memory_backing == "hugetlb") {
    c.memory_backing = GuestRegionBacking::kMemfdHugetlb;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("--memory_backing=", raw.memory_backing,
                                                   ": expected memfd, anonymous or hugetlb"));
  }
  absl::StatusOr<uint64_t> cpus = ParseRange("cpus", raw.cpus, 1, kMaxCpus);
  if (!cpus.ok()) return cpus.status();
  c.cpus = static_cast<uint32_t>(*cpus);
  if (raw.serial == "stdio") {
    c.serial = SerialMode::kStdio;
  } else if (raw.serial == "none") {
    c.serial = SerialMode::kNone;
  } else if (absl::StartsWith(raw.serial, "file:") && raw.serial.size() > 5) {
    c.serial = SerialMode::kFile;
    c.serial_path = raw.serial.substr(5);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--serial=", raw.serial, ": expected stdio, file:PATH or none"));
  }
  c.boot_timer = raw.boot_timer;
  if (!raw.api_socket.empty() && !raw.api_tcp.empty()) {
    return absl::InvalidArgumentError("--api_socket and --api_tcp exclude each other");
  }
  // sun_path holds 107 bytes and a NUL.
  if (raw.api_socket.size() > 107) {
    return absl::InvalidArgumentError(
        absl::StrCat("--api_socket=", raw.api_socket, ": longer than a socket path may be (107)"));
  }
  c.api_socket = raw.api_socket;
  c.api_tcp = raw.api_tcp;
  return c;
}

}  // namespace vmmkit::vmm
