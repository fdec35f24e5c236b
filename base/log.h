// File: base/log.h
// -----------------------------------------------------------------------------
// Minimal logging to stderr for conditions that cannot be returned as a Status: a failure inside
// a destructor or a MemoryListener::RegionDel, a hostile guest access that gets a defined device
// behaviour instead of an error. (Debian 12's Abseil has no absl/log.)
//
//   LogWarning("uart: guest wrote ", Hex(value), " to read-only register ", reg);

#ifndef VMMKIT_BASE_LOG_H_
#define VMMKIT_BASE_LOG_H_

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

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

}  // namespace vmmkit

#endif  // VMMKIT_BASE_LOG_H_
