// nztrace: run a program under libneuzip with tracing on and report what
// compression saved and cost. Usage and report fields: docs/NZTRACE.md.
//
//   nztrace [--json] [--keep-trace FILE] [--report FILE] [--lib PATH] [--top N] -- program args...
//   nztrace [--json] [--top N] --from-trace FILE      (report on an existing trace)
//
// The report goes to stderr (or --report FILE), never to stdout, so the
// program's own stdout is untouched. Exit status: the program's (128 + signal
// when a signal ended it); 125 nztrace's own failure or bad usage, 126/127
// the program could not be started / found.
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "child_process.h"
#include "render.h"
#include "trace_summary.h"

namespace {

constexpr int kOwnFailure = 125;

constexpr const char* kUsage =
    "usage: nztrace [options] -- program [args...]\n"
    "       nztrace [options] --from-trace FILE\n"
    "  --json             the report as one JSON object (docs/NZTRACE.md)\n"
    "  --keep-trace FILE  write the trace to FILE and keep it (default: a temporary file, deleted)\n"
    "  --report FILE      write the report to FILE instead of stderr\n"
    "  --lib PATH         libneuzip.so to preload (default: $NEUZIP_LIB, the build tree, the install)\n"
    "  --top N            buffers listed in the text report (20; 0 = all)\n";

struct Args {
  bool json = false;
  std::string keep_trace, report_file, lib, from_trace;
  size_t top = 20;
  std::vector<std::string> program;
};

// 0 to go on, else the exit status.
int parse(int argc, char** argv, Args& a) {
  int i = 1;
  for (; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "--") { ++i; break; }
    if (arg == "--help" || arg == "-h") { fmt::print(stderr, "{}", kUsage); return -1; }
    if (arg == "--json") a.json = true;
    else if (arg == "--keep-trace") { if (!value(a.keep_trace)) return kOwnFailure; }
    else if (arg == "--report") { if (!value(a.report_file)) return kOwnFailure; }
    else if (arg == "--lib") { if (!value(a.lib)) return kOwnFailure; }
    else if (arg == "--from-trace") { if (!value(a.from_trace)) return kOwnFailure; }
    else if (arg == "--top") {
      if (!value(v)) return kOwnFailure;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), a.top);
      if (ec != std::errc() || p != v.data() + v.size()) return kOwnFailure;
    } else if (arg.rfind("-", 0) == 0) {
      return kOwnFailure;
    } else {
      break;  // the program, without a "--"
    }
  }
  for (; i < argc; ++i) a.program.emplace_back(argv[i]);
  if (a.program.empty() == a.from_trace.empty()) return kOwnFailure;  // exactly one of them
  return 0;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x;
  return s;
}

// A fresh temporary file for the trace (mkstemp, so no other user can race us).
std::string temporary_trace(std::string& error) {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/nztrace-XXXXXX";
  const int fd = mkstemp(path.data());
  if (fd < 0) {
    error = "cannot create a temporary trace file in " + path.substr(0, path.rfind('/'));
    return {};
  }
  close(fd);
  return path;
}

bool write_report(const Args& a, const std::string& text) {
  if (a.report_file.empty()) {
    std::fwrite(text.data(), 1, text.size(), stderr);
    return true;
  }
  std::FILE* f = std::fopen(a.report_file.c_str(), "w");
  if (!f) {
    fmt::print(stderr, "nztrace: cannot write {}\n", a.report_file);
    return false;
  }
  std::fwrite(text.data(), 1, text.size(), f);
  return std::fclose(f) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (int rc = parse(argc, argv, a); rc != 0) {
    if (rc > 0) fmt::print(stderr, "nztrace: bad usage\n{}", kUsage);
    return rc < 0 ? 0 : rc;
  }
  std::string error;
  nztrace::RunInfo run;
  std::string trace_path;
  if (!a.from_trace.empty()) {
    trace_path = a.from_trace;
    run.command = "(trace " + a.from_trace + ")";
    run.trace_path = a.from_trace;
  } else {
    std::string searched;
    const std::string lib = nztrace::find_libneuzip(a.lib, searched);
    if (lib.empty()) {
      fmt::print(stderr, "nztrace: libneuzip.so not found (looked at {}); use --lib or NEUZIP_LIB\n", searched);
      return kOwnFailure;
    }
    trace_path = a.keep_trace.empty() ? temporary_trace(error) : a.keep_trace;
    if (trace_path.empty()) {
      fmt::print(stderr, "nztrace: {}\n", error);
      return kOwnFailure;
    }
    run.command = joined(a.program);
    run.exit_status = nztrace::run_traced(a.program, lib, trace_path, error);
    if (!error.empty()) fmt::print(stderr, "nztrace: {}\n", error);
    run.trace_path = a.keep_trace;
  }
  nztrace::TraceFile trace;
  std::string read_error;
  const bool have_trace = nztrace::read_trace_file(trace_path, trace, read_error);
  if (a.keep_trace.empty() && a.from_trace.empty()) {
    std::error_code ec;
    std::filesystem::remove(trace_path, ec);
  }
  if (!have_trace) {
    // The program may have removed or never created it; its status still counts.
    fmt::print(stderr, "nztrace: {}\n", read_error);
    return a.from_trace.empty() ? run.exit_status : kOwnFailure;
  }
  const auto summary = nztrace::summarize(trace);
  const std::string report = a.json ? nztrace::render_json(summary, run) : nztrace::render_text(summary, run, a.top);
  if (!write_report(a, report) && !a.from_trace.empty()) return kOwnFailure;
  return run.exit_status;
}
