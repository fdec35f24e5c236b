// File: base/log.h
// -----------------------------------------------------------------------------
// Minimal logging to stderr for conditions that cannot be returned as a Status: a failure inside
// a destructor or a MemoryListener::RegionDel, a hostile guest access that gets a defined device
// behaviour instead of an error (through a RateLimitedLog). (Debian 12's Abseil has no absl/log.)
//
//   LogWarning("uart: guest wrote ", Hex(value), " to read-only register ", reg);

#ifndef VMMKIT_BASE_LOG_H_
#define VMMKIT_BASE_LOG_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/mutex.h"

namespace vmmkit {

enum class LogLevel { kInfo, kWarning, kError };

// Writes one line "vmmkit <level>: <message>" to stderr atomically (a single write(2)).
void LogLine(LogLevel level, absl::string_view message);

template <typename... Pieces>
void LogInfo(const Pieces&... pieces) {
  LogLine(LogLevel::kInfo, absl::StrCat(pieces...));
}
template <typename... Pieces>
void LogWarning(const Pieces&... pieces) {
  LogLine(LogLevel::kWarning, absl::StrCat(pieces...));
}
template <typename... Pieces>
void LogError(const Pieces&... pieces) {
  LogLine(LogLevel::kError, absl::StrCat(pieces...));
}

// A budget for log lines that a guest can cause at will (a hostile guest rewriting a register in a
// loop must not fill the host's disk, nor buy the VMM's time with formatting): at most `burst`
// lines per `window`; the rest are dropped unformatted and counted, and the next line let through
// says how many went. Thread-safe. Keep one per source (a device) so that one guest device cannot
// silence another's.
//
//   RateLimitedLog guest_log_;
//   guest_log_.Warning("passthrough device ", id, ": BAR ", i, " not mapped: ", why);
//   // -> "... not mapped: ... (57 more like this dropped)" once the budget allows again
class RateLimitedLog {
 public:
  explicit RateLimitedLog(
      int burst = 10, absl::Duration window = absl::Seconds(10),
      std::function<absl::Time()> now = [] { return absl::Now(); })
      : burst_(burst), window_(window), now_(std::move(now)) {}

  template <typename... Pieces>
  void Warning(const Pieces&... pieces) {
    uint64_t dropped = 0;
    if (!Admit(&dropped)) return;
    std::string line = absl::StrCat(pieces...);
    if (dropped > 0) absl::StrAppend(&line, " (", dropped, " more like this dropped)");
    LogLine(LogLevel::kWarning, line);
  }

  // Whether a line may go out now; if so, `dropped` says how many were refused since the last one
  // that went.
  bool Admit(uint64_t* dropped);

 private:
  const int burst_;
  const absl::Duration window_;
  const std::function<absl::Time()> now_;
  Mutex mu_;
  absl::Time window_start_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int used_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace vmmkit

#endif  // VMMKIT_BASE_LOG_H_
