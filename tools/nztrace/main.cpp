// nztrace: run a program under libneuzip with tracing on and report what
// compression saved and cost. Usage and report fields: docs/NZTRACE.md.
//
//   nztrace [options] -- program args...
//   nztrace [options] --compare -- program args...   (without, then with compression)
//   nztrace [options] --from-trace FILE              (report on an existing trace)
//
// The report goes to stderr (or --report FILE), never to stdout, so the
// program's own stdout is untouched. Exit status: the program's (128 + signal
// when a signal ended it; under --compare the run with compression); 125
// nztrace's own failure or bad usage, 126/127 the program could not be
// started / found.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "child_process.h"
#include "compare.h"
#include "outputs.h"
#include "render.h"
#include "trace_summary.h"

namespace {

constexpr int kOwnFailure = 125;

constexpr const char* kUsage =
    "usage: nztrace [options] -- program [args...]\n"
    "       nztrace [options] --from-trace FILE\n"
    "  --json [FILE]      the report as one JSON object (docs/NZTRACE.md) instead of text; with FILE\n"
    "                     (when a -- follows), the JSON goes to FILE and the text report is kept\n"
    "  --keep-trace FILE  write the trace to FILE and keep it (default: a temporary file, deleted)\n"
    "  --report FILE      write the report to FILE instead of stderr\n"
    "  --lib PATH         libneuzip.so to preload (default: $NEUZIP_LIB, the build tree, the install)\n"
    "  --top N            buffers listed in the text report (20; 0 = all)\n"
    "  --compare          run the program twice, without compression (NEUZIP_OBSERVE=1) and with it,\n"
    "                     and report both side by side (--keep-trace FILE keeps FILE.without, FILE.with)\n"
    "  --perfetto FILE    write a Chrome/Perfetto trace-event JSON timeline to FILE\n"
    "  --plot FILE        write device memory over time to FILE (.svg, or an HTML page for .html)\n";

struct Args {
  bool json = false;
  bool compare = false;
  std::string json_file, keep_trace, report_file, lib, from_trace, perfetto, plot;
  size_t top = 20;
  std::vector<std::string> program;
};

// 0 to go on, else the exit status.
int parse(int argc, char** argv, Args& a) {
  // "--json FILE" is told from "--json program" (the program without a "--")
  // by a "--" further on: then the program cannot start before it.
  int separator = argc;
  for (int k = 1; k < argc; ++k) {
    if (std::string(argv[k]) == "--") {
      separator = k;
      break;
    }
  }
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
    if (arg == "--json") {
      a.json = true;
      if (i + 1 < separator && argv[i + 1][0] != '-') a.json_file = argv[++i];
    }
    else if (arg == "--compare") a.compare = true;
    else if (arg == "--perfetto") { if (!value(a.perfetto)) return kOwnFailure; }
    else if (arg == "--plot") { if (!value(a.plot)) return kOwnFailure; }
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
  if (a.compare && a.program.empty()) return kOwnFailure;
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

// `text` to `path`, or to stderr when `path` is empty.
bool write_report(const std::string& path, const std::string& text) {
  if (path.empty()) {
    std::fwrite(text.data(), 1, text.size(), stderr);
    return true;
  }
  std::string error;
  if (nztrace::write_text_file(path, text, error)) return true;
  fmt::print(stderr, "nztrace: {}\n", error);
  return false;
}

// The traces other processes of a run wrote beside `path`: the runtime's
// "<path>.<pid>" when another process already held `path` (src/runtime/trace.cpp).
std::vector<std::pair<long, std::string>> other_traces(const std::string& path) {
  namespace fs = std::filesystem;
  std::vector<std::pair<long, std::string>> found;
  const fs::path p(path);
  const std::string prefix = p.filename().string() + ".";
  std::error_code ec;
  for (fs::directory_iterator it(p.has_parent_path() ? p.parent_path() : fs::path("."), ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0 || name.size() - prefix.size() > 9)
      continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.find_first_not_of("0123456789") != std::string::npos) continue;
    found.emplace_back(std::stol(digits), it->path().string());
  }
  std::sort(found.begin(), found.end());
  return found;
}

void remove_other_traces(const std::string& path) {
  for (const auto& [pid, file] : other_traces(path)) {
    std::error_code ec;
    std::filesystem::remove(file, ec);
  }
}

// Reads and summarises the trace at `path` into `run`, and those of the
// run's other processes beside it; a missing trace is reported and leaves
// an empty summary (the program's status still counts). The report's
// process is the first that allocated through neuzip: the file's holder may
// be a helper that only asked for the device before the workload started.
bool load_trace(const std::string& path, nztrace::TracedRun& run, bool keep_paths) {
  std::string error;
  if (!nztrace::read_trace_file(path, run.trace, error)) {
    fmt::print(stderr, "nztrace: {}\n", error);
    return false;
  }
  run.summary = nztrace::summarize(run.trace);
  for (const auto& [pid, file] : other_traces(path)) {
    nztrace::TraceFile trace;
    if (!nztrace::read_trace_file(file, trace, error)) {
      fmt::print(stderr, "nztrace: {}\n", error);
      continue;
    }
    nztrace::OtherProcess other;
    other.info.command = run.info.command;
    other.info.pid = pid;
    other.info.trace_path = keep_paths ? file : "";
    other.summary = nztrace::summarize(trace);
    // A helper that initialised CUDA and allocated nothing through neuzip
    // (Inductor's compile workers, a device query): counted, not reported.
    if (other.summary.allocations == 0) {
      ++run.idle_others;
      continue;
    }
    if (run.summary.allocations == 0) {  // the holder was such a helper
      std::swap(run.trace, trace);
      std::swap(run.summary, other.summary);
      run.info.trace_path = keep_paths ? file : "";
      ++run.idle_others;
      continue;
    }
    run.others.push_back(std::move(other));
  }
  return true;
}

// Runs the program once under the library, with `extra_env`, and reads its
// trace (kept at `keep`, else a temporary file removed afterwards).
int run_program(const Args& a, const std::string& lib, const std::vector<std::string>& extra_env,
                const std::string& keep, nztrace::TracedRun& run) {
  std::string error;
  const std::string trace_path = keep.empty() ? temporary_trace(error) : keep;
  if (trace_path.empty()) {
    fmt::print(stderr, "nztrace: {}\n", error);
    return kOwnFailure;
  }
  run.info.command = joined(a.program);
  // A kept trace's file and its other processes' files may hold an earlier
  // run's lines: the runtime takes the file only while it is empty (and
  // makes none when no process writes a line: the file is there either way).
  if (!keep.empty() && !std::ofstream(trace_path, std::ios::trunc)) {
    fmt::print(stderr, "nztrace: cannot write the trace file {}\n", trace_path);
    return kOwnFailure;
  }
  remove_other_traces(trace_path);
  const auto start = std::chrono::steady_clock::now();
  run.info.exit_status = nztrace::run_traced(a.program, lib, trace_path, extra_env, error);
  run.info.wall_ns = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
  if (!error.empty()) fmt::print(stderr, "nztrace: {}\n", error);
  run.info.trace_path = keep;
  load_trace(trace_path, run, !keep.empty());
  if (keep.empty()) {
    std::error_code ec;
    std::filesystem::remove(trace_path, ec);
    remove_other_traces(trace_path);
  }
  return 0;
}

// "other_processes": the reports of the run's other processes, and
// "idle_other_processes": how many more allocated nothing (each only when
// non-zero, so a one-process report is unchanged).
void add_other_processes(nlohmann::ordered_json& o, const nztrace::TracedRun& run) {
  if (!run.others.empty()) {
    auto& list = o["other_processes"] = nlohmann::ordered_json::array();
    for (const nztrace::OtherProcess& other : run.others)
      list.push_back(nztrace::report_json(other.summary, other.info));
  }
  if (run.idle_others) o["idle_other_processes"] = run.idle_others;
}

// The report, the --perfetto and --plot files. False when one could not be written.
bool write_outputs(const Args& a, const std::vector<const nztrace::TracedRun*>& runs) {
  const nztrace::TracedRun& last = *runs.back();
  const bool compare = runs.size() == 2;
  std::string json;
  if (a.json) {
    nlohmann::ordered_json o;
    if (compare) {
      o = nztrace::compare_json(*runs[0], last);
      add_other_processes(o["without"], *runs[0]);
      add_other_processes(o["with"], last);
    } else {
      o = nztrace::report_json(last.summary, last.info);
      add_other_processes(o, last);
    }
    json = o.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  }
  bool ok = true;
  if (!a.json || !a.json_file.empty()) {
    std::string text = (compare ? nztrace::render_compare_text(*runs[0], last) + "\n" : "") +
                       nztrace::render_text(last.summary, last.info, a.top);
    if (!last.others.empty())
      text += fmt::format("nztrace: {} more process{} of the run wrote traces; {} report{} follow{}\n",
                          last.others.size(), last.others.size() == 1 ? "" : "es", last.others.size() == 1 ? "its" : "their",
                          last.others.size() == 1 ? "" : "s", last.others.size() == 1 ? "s" : "");
    if (last.idle_others)
      text += fmt::format("nztrace: {} more process{} of the run started CUDA and allocated nothing through neuzip\n",
                          last.idle_others, last.idle_others == 1 ? "" : "es");
    for (const nztrace::OtherProcess& other : last.others)
      text += "\n" + nztrace::render_text(other.summary, other.info, a.top);
    ok = write_report(a.report_file, text);
  }
  if (a.json) ok = write_report(a.json_file.empty() ? a.report_file : a.json_file, json) && ok;
  std::string error;
  if (!a.perfetto.empty() && !nztrace::write_perfetto(a.perfetto, runs, error)) {
    fmt::print(stderr, "nztrace: {}\n", error);
    ok = false;
  }
  if (!a.plot.empty() && !nztrace::write_plot(a.plot, runs, error)) {
    fmt::print(stderr, "nztrace: {}\n", error);
    ok = false;
  }
  return ok;
}

}  // namespace


int main(int argc, char** argv) {
  Args a;
  if (int rc = parse(argc, argv, a); rc != 0) {
    if (rc > 0) fmt::print(stderr, "nztrace: bad usage\n{}", kUsage);
    return rc < 0 ? 0 : rc;
  }
  if (!a.from_trace.empty()) {
    nztrace::TracedRun run;
    run.info.command = "(trace " + a.from_trace + ")";
    run.info.trace_path = a.from_trace;
    if (!load_trace(a.from_trace, run, true)) return kOwnFailure;
    return write_outputs(a, {&run}) ? 0 : kOwnFailure;
  }
  std::string searched;
  const std::string lib = nztrace::find_libneuzip(a.lib, searched);
  if (lib.empty()) {
    fmt::print(stderr, "nztrace: libneuzip.so not found (looked at {}); use --lib or NEUZIP_LIB\n", searched);
    return kOwnFailure;
  }
  nztrace::TracedRun without, with;
  std::vector<const nztrace::TracedRun*> runs;
  if (a.compare) {
    // Without first: a warm page cache then favours the run with neuzip no
    // more than the other way round would.
    without.label = "without neuzip";
    with.label = "with neuzip";
    const std::string keep0 = a.keep_trace.empty() ? "" : a.keep_trace + ".without";
    if (int rc = run_program(a, lib, {"NEUZIP_OBSERVE=1"}, keep0, without); rc != 0) return rc;
    runs.push_back(&without);
  }
  const std::string keep1 = a.keep_trace.empty() || !a.compare ? a.keep_trace : a.keep_trace + ".with";
  std::vector<std::string> with_env;
  if (a.compare) with_env.push_back("NEUZIP_OBSERVE=0");  // whatever the caller's environment says
  if (int rc = run_program(a, lib, with_env, keep1, with); rc != 0) return rc;
  runs.push_back(&with);
  write_outputs(a, runs);  // a file it could not write was reported; the program's status still counts
  return with.info.exit_status;
}
