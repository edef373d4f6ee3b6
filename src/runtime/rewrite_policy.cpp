// rewrite_policy.cpp: see rewrite_policy.h.
#include "runtime/rewrite_policy.h"

#include "runtime/driver_objects.h"
#include "runtime/runtime_internal.h"

namespace nz::rt {

bool keep_rewritten_resident(int change_streak, bool fixed_budget, size_t bytes) noexcept {
  if (change_streak < detail::kChangesBeforeResident || fixed_budget) return false;
  size_t free = 0, total = 0;
  if (driver().base.cuMemGetInfo(&free, &total) != CUDA_SUCCESS || total == 0) return false;
  // Eviction starts below 1/8 free; a range kept resident must not bring that closer.
  return free > bytes && free - bytes > total / 4;
}

}  // namespace nz::rt
