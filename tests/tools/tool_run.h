// tool_run.h: run a tool's command line through the shell for the tools'
// tests, collecting stdout (and stderr when asked) and the exit code.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace nztools::test {

struct ToolRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// The environment variable `name` (the tests get executable paths from Meson
// this way), or "" when unset.
inline std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// Runs `cmd` with /bin/sh. stderr goes to `err_file` when given (and is read
// back into `err`), otherwise to /dev/null.
inline ToolRun run_command(const std::string& cmd, const std::string& err_file = "") {
  ToolRun r;
  const std::string full = cmd + " 2>" + (err_file.empty() ? std::string("/dev/null") : err_file);
  FILE* p = popen(full.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (!err_file.empty()) {
    std::ifstream in(err_file);
    std::stringstream ss;
    ss << in.rdbuf();
    r.err = ss.str();
  }
  return r;
}

}  // namespace nztools::test
