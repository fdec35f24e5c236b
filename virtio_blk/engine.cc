#include "virtio_blk/engine.h"

#include "absl/strings/str_cat.h"

namespace vmmkit::virtio_blk {

absl::string_view BlockEngineName(BlockEngine engine) {
  return engine == BlockEngine::kIoUring ? "io_uring" : "threads";
}

absl::StatusOr<BlockEngine> ParseBlockEngine(absl::string_view name) {
  if (name == "threads") return BlockEngine::kThreads;
  if (name == "io_uring") return BlockEngine::kIoUring;
  return absl::InvalidArgumentError(
      absl::StrCat("virtio-blk engine '", name, "' (threads or io_uring)"));
}

}  // namespace vmmkit::virtio_blk
