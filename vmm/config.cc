#include "vmm/config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <optional>
#include <string_view>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

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

bool IsHex(std::string_view s, size_t digits) {
  return s.size() == digits && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c));
         });
}

}  // namespace

absl::Status CheckDeviceId(const std::string& id) {
  const bool ok = !id.empty() && id.size() <= 63 && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError("id must be 1-63 letters, digits, '-' or '_'");
}

std::string EchoForError(std::string_view text) {
  constexpr size_t kMax = 64;
  if (text.size() <= kMax) return std::string(text);
  return absl::StrCat(absl::string_view(text.data(), kMax), "... (", text.size(), " bytes)");
}

absl::StatusOr<std::string> NormalizeBdf(const std::string& text) {
  std::string t = absl::AsciiStrToLower(text);
  if (t.size() == 7) t = "0000:" + t;
  // DDDD:BB:DD.F with a device number below 32 and a function below 8.
  const bool shape = t.size() == 12 && t[4] == ':' && t[7] == ':' && t[10] == '.' &&
                     IsHex(std::string_view(t).substr(0, 4), 4) &&
                     IsHex(std::string_view(t).substr(5, 2), 2) &&
                     IsHex(std::string_view(t).substr(8, 2), 2) && t[11] >= '0' && t[11] <= '7';
  if (!shape || std::stoul(t.substr(8, 2), nullptr, 16) > 31) {
    return absl::InvalidArgumentError(
        absl::StrCat("PCI address '", EchoForError(text),
                     "': expected [DDDD:]BB:DD.F in hex (e.g. 0000:00:03.0)"));
  }
  return t;
}

absl::StatusOr<PassthroughConfig> ParseDevice(const std::string& text, size_t index) {
  const std::string what = absl::StrCat("--device=", text);
  std::vector<std::string> parts = absl::StrSplit(text, ',');
  if (parts[0] != "vfio-pci") {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": unknown device type '", parts[0], "' (supported: vfio-pci)"));
  }
  PassthroughConfig d{.id = absl::StrCat("hostdev", index), .host_bdf = ""};
  for (size_t i = 1; i < parts.size(); ++i) {
    std::pair<std::string, std::string> kv = absl::StrSplit(parts[i], absl::MaxSplits('=', 1));
    if (kv.first == "host") {
      absl::StatusOr<std::string> bdf = NormalizeBdf(kv.second);
      if (!bdf.ok())
        return absl::InvalidArgumentError(absl::StrCat(what, ": host: ", bdf.status().message()));
      d.host_bdf = *bdf;
    } else if (kv.first == "id") {
      if (absl::Status s = CheckDeviceId(kv.second); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
      }
      d.id = kv.second;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": unknown option '", kv.first, "' (supported: host, id)"));
    }
  }
  if (d.host_bdf.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": host=BDF is required"));
  }
  return d;
}

absl::StatusOr<VsockConfig> ParseVsock(const std::string& text) {
  const std::string what = absl::StrCat("--vsock=", EchoForError(text));
  VsockConfig v{.id = "vsock0"};
  bool have_cid = false;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.first == "cid") {
      absl::StatusOr<uint64_t> cid = ParseRange("vsock cid", kv.second, 3, 0xfffffffe);
      if (!cid.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", cid.status().message()));
      }
      v.cid = *cid;
      have_cid = true;
    } else if (kv.first == "id") {
      if (absl::Status s = CheckDeviceId(kv.second); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
      }
      v.id = kv.second;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": unknown option '", EchoForError(kv.first), "' (supported: cid, id)"));
    }
  }
  if (!have_cid) return absl::InvalidArgumentError(absl::StrCat(what, ": cid=N is required"));
  return v;
}

absl::Status CheckTapName(const std::string& name) {
  if (name.empty() || name.size() > 15 || !std::all_of(name.begin(), name.end(), [](char ch) {
        return absl::ascii_isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' ||
               ch == '.';
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat("tap '", EchoForError(name),
                     "' must be an interface name of 1 to 15 letters, digits, '-', '_' or '.'"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::array<uint8_t, 6>> ParseMac(const std::string& text) {
  std::array<uint8_t, 6> mac = {};
  const std::vector<std::string> parts = absl::StrSplit(text, ':');
  bool ok = parts.size() == 6;
  for (size_t i = 0; ok && i < 6; ++i) {
    int value = 0;
    ok = parts[i].size() == 2 && absl::SimpleHexAtoi(parts[i], &value);
    mac[i] = static_cast<uint8_t>(value);
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mac '", EchoForError(text), "' is not six two-digit hex bytes (52:54:00:12:34:56)"));
  }
  if ((mac[0] & 1) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("mac '", EchoForError(text), "' is a multicast address"));
  }
  return mac;
}

absl::StatusOr<NetConfig> ParseNet(const std::string& text, size_t index) {
  const std::string what = absl::StrCat("--net=", EchoForError(text));
  auto invalid = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", why));
  };
  NetConfig n{.id = absl::StrCat("net", index),
              .mac = {0x52, 0x54, 0x00, 0x12, 0x34, static_cast<uint8_t>(0x56 + index)}};
  std::optional<uint16_t> queues;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.first == "tap") {
      if (absl::Status s = CheckTapName(kv.second); !s.ok()) return invalid(s.message());
      n.tap = kv.second;
    } else if (kv.first == "fd") {
      for (absl::string_view f : absl::StrSplit(kv.second, ':')) {
        absl::StatusOr<uint64_t> fd = ParseRange("tap fd", std::string(f), 3, 65535);
        if (!fd.ok()) return invalid(fd.status().message());
        n.fds.push_back(static_cast<int>(*fd));
      }
    } else if (kv.first == "mac") {
      absl::StatusOr<std::array<uint8_t, 6>> mac = ParseMac(kv.second);
      if (!mac.ok()) return invalid(mac.status().message());
      n.mac = *mac;
    } else if (kv.first == "id") {
      if (absl::Status s = CheckDeviceId(kv.second); !s.ok()) return invalid(s.message());
      n.id = kv.second;
    } else if (kv.first == "rx_bytes" || kv.first == "rx_packets" || kv.first == "tx_bytes" ||
               kv.first == "tx_packets") {
      absl::StatusOr<uint64_t> v =
          ParseRange(absl::StrCat("net ", kv.first), kv.second, 1, uint64_t{1} << 40);
      if (!v.ok()) return invalid(v.status().message());
      (kv.first == "rx_bytes"     ? n.limits.rx_bytes
       : kv.first == "rx_packets" ? n.limits.rx_packets
       : kv.first == "tx_bytes"   ? n.limits.tx_bytes
                                  : n.limits.tx_packets) = *v;
    } else if (kv.first == "vhost") {
      if (kv.second != "on" && kv.second != "off") return invalid("vhost must be on or off");
      n.vhost = kv.second == "on";
    } else if (kv.first == "queues") {
      absl::StatusOr<uint64_t> q = ParseRange("net queues", kv.second, 1, kMaxNetQueuePairs);
      if (!q.ok()) return invalid(q.status().message());
      queues = static_cast<uint16_t>(*q);
    } else {
      return invalid(absl::StrCat("unknown option '", EchoForError(kv.first),
                                  "' (supported: tap, fd, mac, id, queues, vhost, rx_bytes, "
                                  "rx_packets, tx_bytes, tx_packets)"));
    }
  }
  if (n.tap.empty() == n.fds.empty()) return invalid("one of tap=NAME or fd=N is required");
  if (n.vhost && n.limits.any()) {
    return invalid("rate limits need vmm's data path (vhost=off): vhost-net has no limiter");
  }
  if (!n.fds.empty()) {
    if (n.fds.size() > kMaxNetQueuePairs) return invalid("at most 16 fds");
    if (queues && *queues != n.fds.size()) return invalid("queues must match the fds given");
    n.queue_pairs = static_cast<uint16_t>(n.fds.size());
  } else {
    n.queue_pairs = queues.value_or(1);
  }
  return n;
}

absl::StatusOr<DiskConfig> ParseDisk(const std::string& text, size_t index) {
  const std::string what = absl::StrCat("--disk=", EchoForError(text));
  DiskConfig d{.id = absl::StrCat("disk", index)};
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.first == "path") {
      if (absl::Status s = CheckReadableFile("disk path", kv.second); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
      }
      d.path = kv.second;
    } else if (kv.first == "readonly") {
      if (kv.second != "on" && kv.second != "off") {
        return absl::InvalidArgumentError(absl::StrCat(what, ": readonly must be on or off"));
      }
      d.read_only = kv.second == "on";
    } else if (kv.first == "id") {
      if (absl::Status s = CheckDeviceId(kv.second); !s.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.message()));
      }
      d.id = kv.second;
    } else if (kv.first == "queues") {
      absl::StatusOr<uint64_t> q = ParseRange("disk queues", kv.second, 1, kMaxDiskQueues);
      if (!q.ok())
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", q.status().message()));
      d.queues = static_cast<uint16_t>(*q);
    } else if (kv.first == "engine") {
      absl::StatusOr<virtio_blk::BlockEngine> e = virtio_blk::ParseBlockEngine(kv.second);
      if (!e.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(what, ": ", e.status().message()));
      }
      d.engine = *e;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": unknown option '", EchoForError(kv.first),
                       "' (supported: path, readonly, id, queues, engine)"));
    }
  }
  if (d.path.empty())
    return absl::InvalidArgumentError(absl::StrCat(what, ": path=FILE is required"));
  return d;
}

absl::StatusOr<VmmConfig> ValidateConfig(const RawConfig& raw) {
  VmmConfig c;
  if (raw.kernel.empty()) return absl::InvalidArgumentError("--kernel is required");
  if (absl::Status s = CheckReadableFile("kernel", raw.kernel); !s.ok()) return s;
  c.kernel_path = raw.kernel;
  if (raw.kernel_entry == "as-is") {
    c.kernel_entry = KernelEntry::kAsIs;
  } else if (raw.kernel_entry == "64bit") {
    c.kernel_entry = KernelEntry::k64Bit;
  } else if (raw.kernel_entry == "pvh") {
    c.kernel_entry = KernelEntry::kPvh;
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--kernel_entry=", EchoForError(raw.kernel_entry), ": expected as-is, 64bit or pvh"));
  }
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
  c.prefault = raw.prefault;
  c.boot_timer = raw.boot_timer;
  c.debug_exit = raw.debug_exit;
  c.iommu = raw.iommu;
  c.iommu_caching_mode = raw.iommu_caching_mode;
  if (raw.irqchip != "kernel" && raw.irqchip != "split") {
    return absl::InvalidArgumentError(
        absl::StrCat("--irqchip=", raw.irqchip, ": expected kernel or split"));
  }
  c.split_irqchip = raw.irqchip == "split";
  // sun_path holds 107 bytes and a NUL.
  if (raw.api_socket.size() > 107) {
    return absl::InvalidArgumentError(
        absl::StrCat("--api_socket=", raw.api_socket, ": longer than a socket path may be (107)"));
  }
  c.api_socket = raw.api_socket;
  absl::StatusOr<sandbox::SeccompMode> seccomp = sandbox::ParseSeccompMode(raw.seccomp);
  if (!seccomp.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seccomp=", EchoForError(raw.seccomp), ": expected on, log or off"));
  }
  c.seccomp = *seccomp;
  if (raw.landlock != "on" && raw.landlock != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("--landlock=", EchoForError(raw.landlock), ": expected on or off"));
  }
  c.landlock = raw.landlock == "on";
  if (raw.devices.size() > kMaxPassthroughDevices) {
    return absl::InvalidArgumentError(absl::StrCat("--device: at most ", kMaxPassthroughDevices,
                                                   " devices, got ", raw.devices.size()));
  }
  for (size_t i = 0; i < raw.devices.size(); ++i) {
    absl::StatusOr<PassthroughConfig> d = ParseDevice(raw.devices[i], i);
    if (!d.ok()) return d.status();
    for (const PassthroughConfig& other : c.devices) {
      if (other.host_bdf == d->host_bdf || other.id == d->id) {
        return absl::InvalidArgumentError(
            absl::StrCat("--device=", raw.devices[i], ": ",
                         other.host_bdf == d->host_bdf ? "host " + d->host_bdf : "id " + d->id,
                         " is already used by another --device"));
      }
    }
    c.devices.push_back(*std::move(d));
  }
  if (c.iommu && !c.iommu_caching_mode && !c.devices.empty()) {
    return absl::InvalidArgumentError(
        "--device behind --iommu needs --iommu_caching_mode: the host IOMMU follows the guest's "
        "mappings, which the guest reports only in caching mode");
  }
  if (raw.disks.size() > kMaxDisks) {
    return absl::InvalidArgumentError(
        absl::StrCat("--disk: at most ", kMaxDisks, " disks, got ", raw.disks.size()));
  }
  for (size_t i = 0; i < raw.disks.size(); ++i) {
    absl::StatusOr<DiskConfig> d = ParseDisk(raw.disks[i], i);
    if (!d.ok()) return d.status();
    const bool taken = std::any_of(c.devices.begin(), c.devices.end(),
                                   [&](const PassthroughConfig& p) { return p.id == d->id; }) ||
                       std::any_of(c.disks.begin(), c.disks.end(), [&](const DiskConfig& o) {
                         return o.id == d->id || o.path == d->path;
                       });
    if (taken) {
      return absl::InvalidArgumentError(
          absl::StrCat("--disk=", EchoForError(raw.disks[i]), ": its id or path is already used"));
    }
    c.disks.push_back(*std::move(d));
  }
  if (raw.nets.size() > kMaxNets) {
    return absl::InvalidArgumentError(
        absl::StrCat("--net: at most ", kMaxNets, " interfaces, got ", raw.nets.size()));
  }
  for (size_t i = 0; i < raw.nets.size(); ++i) {
    absl::StatusOr<NetConfig> n = ParseNet(raw.nets[i], i);
    if (!n.ok()) return n.status();
    const auto same_id = [&](const auto& o) { return o.id == n->id; };
    if (std::any_of(c.devices.begin(), c.devices.end(), same_id) ||
        std::any_of(c.disks.begin(), c.disks.end(), same_id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--net=", EchoForError(raw.nets[i]), ": its id is already used"));
    }
    for (const NetConfig& o : c.nets) {
      if (o.id == n->id || o.mac == n->mac || (!o.tap.empty() && o.tap == n->tap)) {
        return absl::InvalidArgumentError(absl::StrCat("--net=", EchoForError(raw.nets[i]),
                                                       ": its id, MAC or tap is already used"));
      }
    }
    c.nets.push_back(*std::move(n));
  }
  if (!raw.vsock.empty()) {
    absl::StatusOr<VsockConfig> v = ParseVsock(raw.vsock);
    if (!v.ok()) return v.status();
    const auto same_id = [&](const auto& o) { return o.id == v->id; };
    if (std::any_of(c.devices.begin(), c.devices.end(), same_id) ||
        std::any_of(c.disks.begin(), c.disks.end(), same_id) ||
        std::any_of(c.nets.begin(), c.nets.end(), same_id)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--vsock=", EchoForError(raw.vsock), ": its id is already used"));
    }
    c.vsock = *std::move(v);
  }
  for (const std::string& dir : raw.disk_dirs) {
    struct stat st;
    if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--disk-dir=", EchoForError(dir), ": not a directory"));
    }
    c.disk_dirs.push_back(dir);
  }
  return c;
}

}  // namespace vmmkit::vmm
