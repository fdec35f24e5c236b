// Fuzzes IovaTree against a page-by-page model: inserts, removals (splitting and trimming),
// lookups and free-range searches over a 64-page IOVA space. Checked after every step: each page
// is mapped in the tree exactly when it is in the model, to the same translation and
// permissions; an insert succeeds exactly when its pages were all free; a removal returns exactly
// the pages that were mapped; a free range found is free and inside its window.
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "iommu/iova_tree.h"
#include "tools/testing/fuzz_input.h"

namespace vmmkit::iommu {
namespace {

constexpr uint64_t kPage = 0x1000;
constexpr uint64_t kPages = 64;

struct Page {
  uint64_t translated;
  IommuAccess perm;
};

void Run(const uint8_t* data, size_t size) {
  IovaTree tree;
  std::array<std::optional<Page>, kPages> model;
  fuzzing::FuzzInput in(data, size);
  for (int ops = 0; !in.done() && ops < 128; ++ops) {
    const uint8_t op = in.Take<uint8_t>() % 3;
    const uint64_t first = in.Take<uint8_t>() % kPages;
    const uint64_t pages = 1 + in.Take<uint8_t>() % (kPages - first);
    if (op == 0) {
      const uint64_t translated = in.Take<uint32_t>() * kPage;
      const auto perm = static_cast<IommuAccess>(1 + in.Take<uint8_t>() % 3);
      const bool ok = tree.Insert({Iova(first * kPage), pages * kPage, translated, perm}).ok();
      bool free = true;
      for (uint64_t p = first; p < first + pages; ++p) free = free && !model[p];
      fuzzing::Require(ok == free, "an insert the model disagrees with");
      if (ok) {
        for (uint64_t p = first; p < first + pages; ++p) {
          model[p] = Page{translated + (p - first) * kPage, perm};
        }
      }
    } else if (op == 1) {
      uint64_t removed = 0;
      for (const IovaMapping& m : tree.Remove(Iova(first * kPage), pages * kPage)) {
        fuzzing::Require(m.iova.raw() >= first * kPage && m.last().raw() < (first + pages) * kPage,
                         "a removed piece outside the range");
        removed += m.size / kPage;
      }
      uint64_t mapped = 0;
      for (uint64_t p = first; p < first + pages; ++p) {
        if (model[p]) ++mapped;
        model[p].reset();
      }
      fuzzing::Require(removed == mapped, "removed pages differ from the mapped ones");
    } else {
      absl::StatusOr<Iova> at =
          tree.FindFree(Iova(first * kPage), Iova(kPages * kPage - 1), pages * kPage, kPage);
      // First fit, from the model: the lowest page >= first starting `pages` free ones.
      std::optional<uint64_t> want;
      for (uint64_t s = first; !want && s + pages <= kPages; ++s) {
        bool free = true;
        for (uint64_t p = s; p < s + pages && free; ++p) free = !model[p];
        if (free) want = s;
      }
      fuzzing::Require(at.ok() == want.has_value(),
                       "FindFree disagrees with the model on whether one fits");
      if (at.ok()) fuzzing::Require(at->raw() == *want * kPage, "FindFree is not first fit");
    }
    for (uint64_t p = 0; p < kPages; ++p) {
      const std::optional<IovaMapping> m = tree.Find(Iova(p * kPage + 0x10));
      fuzzing::Require(m.has_value() == model[p].has_value(),
                       "a page mapped in one and not the other");
      if (m) {
        fuzzing::Require(m->translated + (p * kPage - m->iova.raw()) == model[p]->translated &&
                             m->perm == model[p]->perm,
                         "a page translated differently");
      }
    }
  }
}

}  // namespace
}  // namespace vmmkit::iommu

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmmkit::iommu::Run(data, size);
  return 0;
}
