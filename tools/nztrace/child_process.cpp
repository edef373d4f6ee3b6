// child_process.cpp: posix_spawnp with an edited environment, then waitpid.
#include "child_process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

extern char** environ;

#ifndef NZTRACE_LIBDIR
#define NZTRACE_LIBDIR "/usr/local/lib"
#endif

namespace nztrace {

namespace {

namespace fs = std::filesystem;

fs::path own_directory() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

// Restores a signal disposition when the wait is over, on every path.
class IgnoredSignal {
 public:
  explicit IgnoredSignal(int sig) : sig_(sig) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    sigaction(sig_, &ignore, &old_);
  }
  IgnoredSignal(const IgnoredSignal&) = delete;
  IgnoredSignal& operator=(const IgnoredSignal&) = delete;
  ~IgnoredSignal() { sigaction(sig_, &old_, nullptr); }

 private:
  int sig_;
  struct sigaction old_ {};
};

}  // namespace

std::string find_libneuzip(const std::string& explicit_path, std::string& searched) {
  std::vector<fs::path> candidates;
  if (!explicit_path.empty()) {
    candidates.emplace_back(explicit_path);
  } else {
    if (const char* env = std::getenv("NEUZIP_LIB"); env != nullptr && *env != '\0') candidates.emplace_back(env);
    const fs::path here = own_directory();
    if (!here.empty()) {
      candidates.push_back(here / ".." / "interpose" / "libneuzip.so");
      for (const char* lib : {"lib", "lib64", "lib/x86_64-linux-gnu"}) candidates.push_back(here / ".." / lib / "libneuzip.so");
    }
    candidates.push_back(fs::path(NZTRACE_LIBDIR) / "libneuzip.so");
  }
  searched.clear();
  for (const auto& c : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(c, ec)) return fs::weakly_canonical(c, ec).string();
    if (!searched.empty()) searched += ", ";
    searched += c.string();
  }
  return {};
}

int run_traced(const std::vector<std::string>& argv, const std::string& lib, const std::string& trace_path,
               const std::vector<std::string>& extra_env, std::string& error) {
  std::vector<std::string> env_storage;
  std::string preload = "LD_PRELOAD=" + lib;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view entry(*e);
    if (entry.rfind("NEUZIP_TRACE=", 0) == 0 || entry.rfind("NEUZIP_TRACE_RUN=", 0) == 0) continue;
    const auto replaced = [&](const std::string& e) { return entry.rfind(e.substr(0, e.find('=') + 1), 0) == 0; };
    if (std::any_of(extra_env.begin(), extra_env.end(), replaced)) continue;
    if (entry.rfind("LD_PRELOAD=", 0) == 0) {
      const std::string_view old = entry.substr(std::strlen("LD_PRELOAD="));
      if (!old.empty()) {
        preload += ':';
        preload.append(old);
      }
      continue;
    }
    env_storage.emplace_back(entry);
  }
  env_storage.push_back(preload);
  env_storage.push_back("NEUZIP_TRACE=" + trace_path);
  // The file is this run's and empty: every process of the run after the
  // first writes "<trace>.<pid>" (src/runtime/trace.cpp), read back by main.cpp.
  env_storage.push_back("NEUZIP_TRACE_RUN=1");
  env_storage.insert(env_storage.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> envp, args;
  for (auto& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  IgnoredSignal keep_on_int(SIGINT), keep_on_quit(SIGQUIT);
  // The child gets the default dispositions back.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGQUIT);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], nullptr, &attr, args.data(), envp.data());
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    error = fmt::format("cannot run {}: {}", argv[0], std::strerror(rc));
    return rc == ENOENT ? 127 : 126;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      error = fmt::format("waitpid: {}", std::strerror(errno));
      return 125;
    }
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

}  // namespace nztrace
