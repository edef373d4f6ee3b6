// trace_events.cpp: JSON-lines parsing of the runtime trace with the tools'
// strict parser; unknown members are ignored so newer runtimes still read.
#include "trace_events.h"

#include <charconv>
#include <fstream>

#include "util/json_value.h"

namespace nztrace {

namespace {

std::optional<uint64_t> u64_member(const nz::util::json::Value& obj, std::string_view key) {
  const auto* v = obj.find(key);
  if (v == nullptr || !v->is_number()) return std::nullopt;
  return v->as_u64();
}

std::vector<std::string> strings_member(const nz::util::json::Value& obj, std::string_view key) {
  std::vector<std::string> out;
  const auto* v = obj.find(key);
  if (v == nullptr || !v->is_array()) return out;
  for (const auto& item : v->items)
    if (item.is_string()) out.push_back(item.text);
  return out;
}

std::optional<uint64_t> hex_address(std::string_view s) {
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, 16);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

std::optional<TraceEvent> parse_trace_line(std::string_view line) {
  auto doc = nz::util::json::parse(line, nullptr, 4);
  if (!doc || !doc->is_object()) return std::nullopt;
  const auto* event = doc->find("event");
  const auto t_ns = u64_member(*doc, "t_ns");
  if (event == nullptr || !event->is_string() || !t_ns) return std::nullopt;
  TraceEvent e;
  e.t_ns = *t_ns;
  e.event = event->text;
  if (const auto* ptr = doc->find("ptr"); ptr != nullptr) {
    std::optional<uint64_t> p = ptr->is_string() ? hex_address(ptr->text) : ptr->as_u64();
    if (!p) return std::nullopt;
    e.ptr = *p;
  }
  e.bytes = u64_member(*doc, "bytes").value_or(0);
  e.used = u64_member(*doc, "used");
  e.staging = u64_member(*doc, "staging");
  e.store = u64_member(*doc, "store");
  e.compressed = u64_member(*doc, "compressed");
  e.freed = u64_member(*doc, "freed");
  e.ns = u64_member(*doc, "ns");
  if (const auto* d = doc->find("dtype"); d != nullptr && d->is_number()) {
    if (auto v = d->as_double()) e.dtype = static_cast<int64_t>(*v);
  }
  if (const auto* a = doc->find("api"); a != nullptr && a->is_string()) e.api = a->text;
  if (const auto* r = doc->find("reason"); r != nullptr && r->is_string()) e.reason = r->text;
  if (const auto* st = doc->find("stream"); st != nullptr && st->is_string()) e.stream = hex_address(st->text);
  if (e.event == "site") {
    e.site = u64_member(*doc, "id");
    e.native = strings_member(*doc, "native");
    e.python = strings_member(*doc, "python");
  } else {
    e.site = u64_member(*doc, "site");
  }
  if (e.event == "counters") {
    CounterValues c;
    c.vmm_calls = u64_member(*doc, "vmm_calls").value_or(0);
    c.decode_launches = u64_member(*doc, "decode_launches").value_or(0);
    c.bytes_decompressed = u64_member(*doc, "bytes_decompressed").value_or(0);
    c.hook_host_ns = u64_member(*doc, "hook_host_ns").value_or(0);
    c.hook_wait_ns = u64_member(*doc, "hook_wait_ns").value_or(0);
    c.stagings_ahead = u64_member(*doc, "stagings_ahead").value_or(0);
    c.stagings_on_launch = u64_member(*doc, "stagings_on_launch").value_or(0);
    e.unserved_vmm_peak = u64_member(*doc, "unserved_vmm_peak").value_or(0);
    e.unserved_async_peak = u64_member(*doc, "unserved_async_peak").value_or(0);
    e.iteration = u64_member(*doc, "iteration");
    e.pid = u64_member(*doc, "pid");
    e.rank = u64_member(*doc, "rank");
    e.counters = c;
  }
  return e;
}

bool read_trace_file(const std::string& path, TraceFile& out, std::string& error) {
  std::ifstream in(path);
  if (!in) {
    error = "cannot open trace " + path;
    return false;
  }
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (auto e = parse_trace_line(line)) out.events.push_back(std::move(*e));
    else ++out.malformed_lines;
  }
  return true;
}

}  // namespace nztrace
