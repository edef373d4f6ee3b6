// prefetch.cpp: StagingOrder is a header-only template; this file checks that
// the header compiles on its own.
#include "runtime/prefetch.h"
