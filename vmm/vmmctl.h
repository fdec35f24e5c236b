// File: vmm/vmmctl.h
// -----------------------------------------------------------------------------
// vmmctl, the command-line client of vmm's control plane, as a library so tests can run it in
// process against a real server. main() in vmmctl_main.cc only calls RunVmmctl.
//
//   vmmctl [--socket=PATH | --tcp=127.0.0.1:PORT] [--json] [--timeout=10s] [--time] COMMAND ...
//
// Commands: get, pause, resume, devices, device ID, add ID HOST [--slot=N], add-disk ID PATH,
// remove ID [--wait=10s], health, watch, shutdown [--force] [--grace=30s]. --time prints how
// long get/pause/resume/add/remove took (the RPC alone, on a connected channel) to stderr.
// Exit status (kExit*): 0 done; 1 the server failed; 2 bad usage; 3 the server cannot be
// reached; 4 refused in the VM's current state (FAILED_PRECONDITION, RESOURCE_EXHAUSTED); 5 a bad
// request (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, OUT_OF_RANGE); 6 timed out; 7 no
// permission to use the Unix socket (it is mode 0600, for the user who started vmm).

#ifndef VMMKIT_VMM_VMMCTL_H_
#define VMMKIT_VMM_VMMCTL_H_

#include <ostream>
#include <string>
#include <vector>

namespace vmmkit::vmm {

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;
inline constexpr int kExitRefused = 4;
inline constexpr int kExitBadRequest = 5;
inline constexpr int kExitTimeout = 6;
// The Unix socket exists but the caller may not use it, or vmm may not open a file it was given.
inline constexpr int kExitPermission = 7;

// `args` excludes the program name. Output goes to `out`, diagnostics to `err`.
int RunVmmctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace vmmkit::vmm

#endif  // VMMKIT_VMM_VMMCTL_H_
