// The simulated device address space: one large PROT_NONE reservation of host
// virtual memory from which cuMemAlloc and cuMemAddressReserve carve ranges.
// Keeping every device address inside it lets the fault handler recognise a
// device fault with two compares. Released ranges are made inaccessible and
// quarantined (not reused for a while), so a use after free faults.
#pragma once

#include <cstddef>
#include <cstdint>

namespace nzsim {

// Creates the reservation (idempotent). Returns false when the host refuses it.
bool va_init();

// Async-signal-safe: is `addr` inside the simulated device address space?
bool va_contains(uintptr_t addr) noexcept;

// Carves `size` bytes aligned to `align` (a power of two); 0 when exhausted.
// The range is followed by an unused guard gap so that overruns fault.
uintptr_t va_allocate(size_t size, size_t align);

// Makes the range inaccessible again (dropping its pages) and quarantines it.
void va_release(uintptr_t addr, size_t size);

// Replaces whatever is mapped at [addr, addr+size) with inaccessible pages.
void va_make_inaccessible(uintptr_t addr, size_t size);

}  // namespace nzsim
