#include "base/alongside.h"

#include <system_error>
#include <utility>

#include "base/log.h"

namespace vmmkit {

Alongside::Alongside(std::function<void()> work) : work_(std::move(work)) {
  if (!work_) return;
  try {
    thread_ = std::thread(work_);
  } catch (const std::system_error& e) {
    LogWarning("no helper thread (", e.what(), "); the work runs in sequence");
  }
}

void Alongside::Join() {
  if (thread_.joinable()) {
    thread_.join();
  } else if (work_) {
    work_();
  }
  work_ = nullptr;
}

}  // namespace vmmkit
