#include "base/process_counts.h"

#include <dirent.h>

namespace vmmkit {
namespace {

// Entries of `path` other than "." and ".."; -1 if it cannot be opened.
int64_t CountDirEntries(const char* path) {
  DIR* d = ::opendir(path);
  if (d == nullptr) return -1;
  int64_t n = 0;
  while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n;
}

}  // namespace

uint64_t OpenFdCount() {
  const int64_t n = CountDirEntries("/proc/self/fd");
  return n > 0 ? static_cast<uint64_t>(n - 1) : 0;  // Less the one opendir holds.
}

uint64_t ThreadCount() {
  const int64_t n = CountDirEntries("/proc/self/task");
  return n > 0 ? static_cast<uint64_t>(n) : 0;
}

}  // namespace vmmkit
