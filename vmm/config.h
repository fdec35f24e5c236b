// File: vmm/config.h
// -----------------------------------------------------------------------------
// VmmConfig: what one `vmm` process runs, validated before anything starts. Every problem with a
// flag or a file comes back as an INVALID_ARGUMENT whose message is one line naming the flag,
// which main() prints before exiting with status 2.
//
//   ASSIGN_OR_RETURN(VmmConfig config, ValidateConfig(raw));

#ifndef VMMKIT_VMM_CONFIG_H_
#define VMMKIT_VMM_CONFIG_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "memory/guest_region.h"
#include "sandbox/seccomp.h"
#include "virtio_blk/engine.h"

namespace vmmkit::vmm {

enum class SerialMode { kStdio, kFile, kNone };

// The flags as given on the command line, unparsed.
struct RawConfig {
  std::string kernel;
  std::string initrd;
  std::string cmdline;
  std::string memory_mib;
  std::string cpus;
  std::string serial;
  std::string memory_backing = "anonymous";
  bool prefault = false;
  bool boot_timer = false;
  bool debug_exit = false;
  std::string kernel_entry = "as-is";
  bool iommu = false;
  bool iommu_caching_mode = true;
  std::string irqchip = "kernel";
  std::string api_socket;
  std::string seccomp = "on";
  std::string landlock = "on";
  std::vector<std::string> devices;    // Each --device value.
  std::vector<std::string> disks;      // Each --disk value.
  std::vector<std::string> disk_dirs;  // Each --disk-dir value.
  std::vector<std::string> nets;       // Each --net value.
  std::string vsock;                   // --vsock; empty: none.
};

// A host PCI function bound to vfio-pci, passed through to the guest.
struct PassthroughConfig {
  std::string id;        // The device's name on the control plane: "hostdev0" unless given.
  std::string host_bdf;  // Normalized: "0000:00:03.0".
};

// A raw disk image given to the guest as virtio-blk.
struct DiskConfig {
  std::string id;  // "disk0" unless given; also the guest's serial (GET_ID).
  std::string path;
  bool read_only = false;
  uint16_t queues = 1;
  virtio_blk::BlockEngine engine = virtio_blk::kDefaultEngine;
};

// A NIC's rate limits, per second (0: none): what the guest may receive and send, in bytes and
// frames (vmm's data path only).
struct NetLimits {
  uint64_t rx_bytes = 0, rx_packets = 0, tx_bytes = 0, tx_packets = 0;
  bool any() const { return rx_bytes || rx_packets || tx_bytes || tx_packets; }
};

// A network interface: virtio-net on a tap, opened by name (one queue per pair) or given as fds
// already attached to one.
struct NetConfig {
  std::string id;        // "net0" unless given.
  std::string tap;       // The tap's name; empty with fds.
  std::vector<int> fds;  // Inherited fds of one tap, one per queue pair.
  std::array<uint8_t, 6> mac = {};
  uint16_t queue_pairs = 1;
  bool vhost = false;  // The kernel's vhost-net data path.
  NetLimits limits;
};

// A virtio-vsock device (the kernel's vhost-vsock): the guest's context id.
struct VsockConfig {
  std::string id;  // "vsock0" unless given.
  uint64_t cid = 0;
};

// How the kernel is entered (--kernel_entry).
enum class KernelEntry {
  kAsIs,   // The file's own entry: a bzImage's decompressor, an ELF's 64-bit entry.
  k64Bit,  // A bzImage decompressed by vmm; the vmlinux's 64-bit entry (startup_64).
  kPvh,    // A bzImage decompressed by vmm, or an ELF vmlinux; its PVH entry (32-bit).
};

struct VmmConfig {
  std::string kernel_path;
  KernelEntry kernel_entry = KernelEntry::kAsIs;
  std::string initrd_path;  // Empty: no initrd.
  std::string cmdline;
  uint64_t memory_bytes;
  GuestRegionBacking memory_backing;
  bool prefault;  // Fault in all guest RAM at start (GuestRegionOptions::prefault).
  uint32_t cpus;
  SerialMode serial;
  std::string serial_path;  // kFile only.
  bool boot_timer;
  bool debug_exit;  // The debug-exit port 0xf4 (devices::DebugExit).
  bool iommu;       // A guest-visible VT-d unit in front of every PCI function.
  // The unit advertises caching mode (what passthrough needs; iommu/vtd/unit.h).
  bool iommu_caching_mode;
  bool split_irqchip;  // The IOAPIC in vmm (KVM_CAP_SPLIT_IRQCHIP), no PIT, no PIC.
  // The control plane's Unix socket path; empty: no API.
  std::string api_socket;
  // Confinement (vmm/confinement.h): each thread kind's seccomp filter, and Landlock.
  sandbox::SeccompMode seccomp;
  bool landlock;
  std::vector<PassthroughConfig> devices;
  std::vector<DiskConfig> disks;
  // Directories a hot-added disk's image may come from (Landlock allows nothing else).
  std::vector<std::string> disk_dirs;
  std::vector<NetConfig> nets;
  std::optional<VsockConfig> vsock;
};

inline constexpr uint64_t kMinMemoryMib = 64;
inline constexpr uint64_t kMaxMemoryMib = 1 << 20;  // 1 TiB.
inline constexpr uint32_t kMaxCpus = 254;           // APIC IDs 0..253; the IOAPIC takes the next.

inline constexpr size_t kMaxPassthroughDevices = 16;
inline constexpr size_t kMaxDisks = 16;
inline constexpr uint16_t kMaxDiskQueues = 16;
inline constexpr size_t kMaxNets = 8;
inline constexpr uint16_t kMaxNetQueuePairs = 16;

absl::StatusOr<VmmConfig> ValidateConfig(const RawConfig& raw);
// One --device value: "vfio-pci,host=[DDDD:]BB:DD.F[,id=NAME]". `index` names it by default.
absl::StatusOr<PassthroughConfig> ParseDevice(const std::string& text, size_t index);
// One --disk value: "path=FILE[,readonly=on|off][,id=NAME][,queues=N][,engine=threads|io_uring]".
// `index` names it.
absl::StatusOr<DiskConfig> ParseDisk(const std::string& text, size_t index);
// One --net value: "tap=NAME|fd=N[:N...][,mac=52:54:00:12:34:56][,id=NAME][,queues=N]
// [,vhost=on|off][,rx_bytes=N][,rx_packets=N][,tx_bytes=N][,tx_packets=N]" (limits per second;
// not with vhost=on). `index`
// names it and picks its default MAC (52:54:00:12:34:56 + index). queues=N is the tap's queue
// pairs (a multi-queue tap for more than one); with fds, their number.
absl::StatusOr<NetConfig> ParseNet(const std::string& text, size_t index);
// --vsock's value: "cid=N[,id=NAME]", N from 3 to 2^32 - 2.
absl::StatusOr<VsockConfig> ParseVsock(const std::string& text);
// A tap interface's name: 1-15 letters, digits, '-', '_' or '.'. INVALID_ARGUMENT naming the rule.
absl::Status CheckTapName(const std::string& name);
// "52:54:00:12:34:56": a unicast MAC address. INVALID_ARGUMENT naming the rule otherwise.
absl::StatusOr<std::array<uint8_t, 6>> ParseMac(const std::string& text);
// A device id (--device id=, AddDevice): 1-63 letters, digits, '-' or '_'. Else the rule, as an
// error message tail.
absl::Status CheckDeviceId(const std::string& id);
// A client's string as an error message may quote it: at most 64 bytes of it, and its length
// when it is longer (a request cannot make vmm send back what it sent, or fill a log).
std::string EchoForError(std::string_view text);
// "[DDDD:]BB:DD.F" (hex) -> "DDDD:BB:DD.F", or INVALID_ARGUMENT.
absl::StatusOr<std::string> NormalizeBdf(const std::string& text);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_CONFIG_H_
