// alloc_sites.h: where a managed allocation was made, for the trace (only
// with NEUZIP_TRACE set; nothing here runs otherwise).
//
// A site is the allocating thread's native stack (the libgcc unwinder,
// symbolised with dladdr, our own frames left out, the innermost few kept)
// and, when the thread holds the GIL of a Python interpreter in the process,
// its innermost Python frames (file:line in function), read in-process
// through the CPython API found with dlsym at run time (libpython is never
// linked). Sites are deduplicated: each distinct one is described once by a
// "site" line, and every "alloc" line names its site by id.
#pragma once

#include <string>

namespace nz::rt {

class Trace;

// The member to add to the "alloc" line being written (`"site":N`). Writes
// the "site" line describing N first when this site was not seen before.
// Empty when the stack cannot be read. Never throws.
std::string alloc_site_member(Trace& trace) noexcept;

}  // namespace nz::rt
