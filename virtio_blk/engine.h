// File: virtio_blk/engine.h
// -----------------------------------------------------------------------------
// BlockEngine names how a virtio-blk queue's I/O reaches its image (BlockDevice has the details):
// kThreads, each queue's worker doing its requests itself one at a time; kIoUring, the worker
// handing them to an io_uring and answering them as they complete. Apart from BlockDevice so that
// configuration and control code can name an engine without the device.
//
//   ASSIGN_OR_RETURN(BlockEngine e, ParseBlockEngine("io_uring"));

#ifndef VMMKIT_VIRTIO_BLK_ENGINE_H_
#define VMMKIT_VIRTIO_BLK_ENGINE_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vmmkit::virtio_blk {

enum class BlockEngine { kThreads, kIoUring };
// What vmm uses unless told otherwise (docs/virtio.md has the measurements behind it).
inline constexpr BlockEngine kDefaultEngine = BlockEngine::kThreads;

// "threads", "io_uring".
absl::string_view BlockEngineName(BlockEngine engine);
// The inverse; INVALID_ARGUMENT naming both for anything else.
absl::StatusOr<BlockEngine> ParseBlockEngine(absl::string_view name);

}  // namespace vmmkit::virtio_blk

#endif  // VMMKIT_VIRTIO_BLK_ENGINE_H_
