// range_map.cpp: RangeMap is a header-only template; this file checks that it
// compiles on its own.
#include "runtime/range_map.h"

#include <algorithm>
