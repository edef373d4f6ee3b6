// child_process.h: finding libneuzip.so and running the traced program.
#pragma once

#include <string>
#include <vector>

namespace nztrace {

// libneuzip.so to preload: `explicit_path` if given, else $NEUZIP_LIB, else
// next to nztrace's build tree (<exe dir>/../interpose/libneuzip.so), else
// the install's lib dirs (<exe dir>/../lib..., then NZTRACE_LIBDIR). Empty
// with `searched` listing the candidates when none exists.
std::string find_libneuzip(const std::string& explicit_path, std::string& searched);

// Runs argv with LD_PRELOAD=<lib> (in front of any existing LD_PRELOAD),
// NEUZIP_TRACE=<trace_path> and `extra_env` ("NAME=value", replacing NAME if
// set), the rest of the environment unchanged, and waits
// for it. nztrace ignores SIGINT/SIGQUIT meanwhile (as system() does) so that
// Ctrl-C stops the program and still leaves a report. Returns the program's
// exit status, 128 + signal when a signal ended it, 127 when it could not be
// started (error set).
int run_traced(const std::vector<std::string>& argv, const std::string& lib, const std::string& trace_path,
               const std::vector<std::string>& extra_env, std::string& error);

}  // namespace nztrace
