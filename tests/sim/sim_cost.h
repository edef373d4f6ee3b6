// sim_cost.h: what a real driver's calls cost the calling thread, charged on
// the simulator (NZSIM_COST), so that CPU runs see the host time VMM calls and
// launches take on a GPU machine. Off by default.
//
//   NZSIM_COST=a100                       published A100 figures (below)
//   NZSIM_COST=a100,map=2+1,unmap=30      a preset with some calls changed
//   NZSIM_COST=create=50+10,launch=4      explicit; unnamed calls cost nothing
// Each value is "per-call µs" or "per-call µs + per-2-MiB µs". Calls:
// create (cuMemCreate), map (cuMemMap), access (cuMemSetAccess), unmap
// (cuMemUnmap), reserve (cuMemAddressReserve), launch (cuLaunchKernel*, host
// side). A bad value prints one `nzsim:` line and is ignored.
#pragma once

#include <cstddef>

namespace nzsim {

enum class CostedCall { kCreate, kMap, kAccess, kUnmap, kReserve, kLaunch, kCount };

// Spins the calling thread for the configured cost of one call over `bytes`.
void charge(CostedCall call, size_t bytes = 0);

}  // namespace nzsim
