#include "runtime/config.h"

#include <charconv>
#include <cstdlib>
#include <string_view>

#include "neuzip/runtime.h"
#include "runtime/log.h"

namespace nz::rt {
namespace {

template <typename T>
bool parse_unsigned(std::string_view text, T& out) {
  if (text.empty()) return false;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc() && ptr == end;
}

void complain(const char* name, const char* value, const char* expected) {
  log(LogLevel::kError, "ignoring {}={} (expected {}); using the default", name, value, expected);
}

// "lossless" or "lossy:K" or "lossy:K:B" (B a power of two, 0 = no blocks).
bool parse_mode(std::string_view text, Config& c) {
  if (text == "lossless") {
    c.mode = NZ_LOSSLESS;
    return true;
  }
  if (!text.starts_with("lossy:")) return false;
  text.remove_prefix(6);
  const size_t colon = text.find(':');
  uint32_t k = 0, block = NZ_DEFAULT_BLOCK;
  if (!parse_unsigned(text.substr(0, colon), k) || k > 22) return false;
  if (colon != std::string_view::npos) {
    if (!parse_unsigned(text.substr(colon + 1), block)) return false;
    if (block != 0 && (block & (block - 1)) != 0) return false;
  }
  c.mode = NZ_LOSSY;
  c.lossy_kept_bits = k;
  c.lossy_block = block;
  return true;
}

bool parse_dtype(std::string_view text, int& out) {
  if (text == "bf16") out = NZ_TAG_BF16;
  else if (text == "fp16") out = NZ_TAG_FP16;
  else if (text == "fp32") out = NZ_TAG_FP32;
  else return false;
  return true;
}

}  // namespace

Config parse_config(const std::function<const char*(const char*)>& getenv_fn) {
  Config c;
  if (const char* v = getenv_fn("NEUZIP_LOG")) {
    int level = 0;
    if (parse_unsigned(v, level) && level <= 2) c.log_level = level;
    else complain("NEUZIP_LOG", v, "0, 1 or 2");
  }
  if (const char* v = getenv_fn("NEUZIP")) {
    std::string_view s(v);
    if (s == "0") c.enabled = false;
    else if (s != "1") complain("NEUZIP", v, "0 or 1");
  }
  if (const char* v = getenv_fn("NEUZIP_MODE")) {
    Config parsed = c;
    if (parse_mode(v, parsed)) c = parsed;
    else complain("NEUZIP_MODE", v, "lossless or lossy:K[:B]");
  }
  if (const char* v = getenv_fn("NEUZIP_LOSSY_HTOD_DTYPE")) {
    if (!parse_dtype(v, c.htod_dtype)) complain("NEUZIP_LOSSY_HTOD_DTYPE", v, "bf16, fp16 or fp32");
  }
  if (const char* v = getenv_fn("NEUZIP_STAGING_MB")) {
    size_t mb = 0;
    if (parse_unsigned(v, mb) && mb < (size_t{1} << 40)) c.staging_bytes = mb << 20;
    else complain("NEUZIP_STAGING_MB", v, "a number of MiB");
  }
  if (const char* v = getenv_fn("NEUZIP_LOOKAHEAD_MB")) {
    size_t mb = 0;
    if (std::string_view(v) == "auto") c.lookahead_bytes = Config::kLookaheadAuto;
    else if (parse_unsigned(v, mb) && mb < (size_t{1} << 40)) c.lookahead_bytes = mb << 20;
    else complain("NEUZIP_LOOKAHEAD_MB", v, "a number of MiB or auto");
  }
  if (const char* v = getenv_fn("NEUZIP_HANDOFF_MB")) {
    size_t mb = 0;
    if (parse_unsigned(v, mb) && mb < (size_t{1} << 40)) c.handoff_bytes = mb << 20;
    else complain("NEUZIP_HANDOFF_MB", v, "a number of MiB (0: off)");
  }
  if (const char* v = getenv_fn("NEUZIP_PARK_MB")) {
    size_t mb = 0;
    if (parse_unsigned(v, mb) && mb < (size_t{1} << 30)) c.park_bytes = mb << 20;
    else complain("NEUZIP_PARK_MB", v, "a number of MiB (0: off)");
  }
  if (const char* v = getenv_fn("NEUZIP_KEEP_STORES_MB")) {
    size_t mb = 0;
    if (parse_unsigned(v, mb) && mb < (size_t{1} << 30)) c.keep_store_bytes = mb << 20;
    else complain("NEUZIP_KEEP_STORES_MB", v, "a number of MiB (0: off)");
  }
  if (const char* v = getenv_fn("NEUZIP_STAGING_HANDLES")) {
    const std::string_view s(v);
    if (s == "pages") c.staging_pages = true;
    else if (s != "runs") complain("NEUZIP_STAGING_HANDLES", v, "runs or pages");
  }
  if (const char* v = getenv_fn("NEUZIP_ENCODE_HANDOFF")) {
    const std::string_view s(v);
    if (s == "0") c.encode_handoffs = false;
    else if (s != "1") complain("NEUZIP_ENCODE_HANDOFF", v, "0 or 1");
  }
  if (const char* v = getenv_fn("NEUZIP_EVICT")) {
    const std::string_view s(v);
    if (s == "lru") c.evict_by_forecast = false;
    else if (s != "forecast") complain("NEUZIP_EVICT", v, "forecast or lru");
  }
  if (const char* v = getenv_fn("NEUZIP_WAIT_PATIENCE_MS")) {
    size_t ms = 0;
    if (parse_unsigned(v, ms) && ms > 0 && ms < (size_t{1} << 40)) c.wait_patience_ms = ms;
    else complain("NEUZIP_WAIT_PATIENCE_MS", v, "a number of milliseconds (at least 1)");
  }
  if (const char* v = getenv_fn("NEUZIP_MIN_BYTES")) {
    size_t bytes = 0;
    if (parse_unsigned(v, bytes)) c.min_bytes = bytes;
    else complain("NEUZIP_MIN_BYTES", v, "a number of bytes");
  }
  // LOCAL_RANK only in a distributed run (WORLD_SIZE > 1, as the launchers
  // set it): a single process that inherited one keeps the first-device rule.
  size_t world = 0;
  const char* world_v = getenv_fn("WORLD_SIZE");
  const bool distributed = world_v != nullptr && parse_unsigned(world_v, world) && world > 1;
  for (const char* name : {"RANK", "LOCAL_RANK"}) {
    const char* v = getenv_fn(name);
    size_t n = 0;
    if (distributed && v != nullptr && parse_unsigned(v, n)) {
      c.rank = n;
      break;
    }
  }
  for (const char* name : {"NEUZIP_DEVICE", "LOCAL_RANK"}) {
    const char* v = getenv_fn(name);
    if (v == nullptr || *v == '\0') continue;
    if (std::string_view(name) == "LOCAL_RANK" && !distributed) continue;
    size_t n = 0;
    if (parse_unsigned(v, n) && n < 1024) {
      c.device = static_cast<int>(n);
      c.device_source = name;
      break;
    }
    if (std::string_view(name) == "NEUZIP_DEVICE") complain(name, v, "a device ordinal");
  }
  if (const char* v = getenv_fn("NEUZIP_LONG_LIVED")) {
    size_t n = 0;
    if (parse_unsigned(v, n) && n <= 1000) c.long_lived_uses = static_cast<uint32_t>(n);
    else complain("NEUZIP_LONG_LIVED", v, "a number of iterations from 0 to 1000");
  }
  if (const char* v = getenv_fn("NEUZIP_CHUNK_ELEMS")) {
    size_t n = 0;
    if (parse_unsigned(v, n) && n >= (1u << 10) && n <= (1u << 22) && (n & (n - 1)) == 0)
      c.chunk_elems = static_cast<uint32_t>(n);
    else
      complain("NEUZIP_CHUNK_ELEMS", v, "a power of two from 1024 to 4194304");
  }
  if (const char* v = getenv_fn("NEUZIP_TRACE")) c.trace_path = v;
  if (const char* v = getenv_fn("NEUZIP_TRACE_RUN")) c.trace_run = std::string_view(v) == "1";
  if (const char* v = getenv_fn("NEUZIP_FAULT_INJECT")) {
    if (std::string_view(v) == "store") c.corrupt_stores = true;
    else complain("NEUZIP_FAULT_INJECT", v, "store");
  }
  if (const char* v = getenv_fn("NEUZIP_REPORT")) {
    std::string_view s(v);
    if (s == "1") c.report = true;
    else if (s != "0") complain("NEUZIP_REPORT", v, "0 or 1");
  }
  if (const char* v = getenv_fn("NEUZIP_COMPRESS")) {
    bool ok = true, idle = false;
    std::string_view rest(v);
    while (ok && !rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      if (item == "optimizer") idle = true;
      else ok = item == "weights";
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    if (ok) c.compress_idle = idle;
    else complain("NEUZIP_COMPRESS", v, "a comma-separated list of weights, optimizer");
  }
  if (const char* v = getenv_fn("NEUZIP_OBSERVE")) {
    std::string_view s(v);
    if (s == "1") c.observe = true;
    else if (s != "0") complain("NEUZIP_OBSERVE", v, "0 or 1");
  }
  if (const char* v = getenv_fn("NEUZIP_TMA_EXTENTS")) {
    std::string_view s(v);
    if (s == "1") c.tma_extents = true;
    else if (s != "0") complain("NEUZIP_TMA_EXTENTS", v, "0 or 1");
  }
  if (const char* v = getenv_fn("NEUZIP_TAG_EXTENTS")) {
    std::string_view s(v);
    if (s == "1") c.tag_extents = true;
    else if (s != "0") complain("NEUZIP_TAG_EXTENTS", v, "0 or 1");
  }
  if (const char* v = getenv_fn("NEUZIP_NCCL")) {
    std::string_view s(v);
    if (s == "0") c.nccl_hooks = false;
    else if (s != "1") complain("NEUZIP_NCCL", v, "0 or 1");
  }
  return c;
}

nz_options Config::codec_options(nz_dtype dtype, bool lossy) const {
  nz_options opts;
  nz_options_default(&opts, dtype);
  opts.chunk_elems = chunk_elems;
  if (lossy && mode == NZ_LOSSY) {
    opts.mode = NZ_LOSSY;
    opts.kept_bits = lossy_kept_bits;
    opts.block_size = lossy_block;
  }
  return opts;
}

Config config_from_environment() {
  return parse_config([](const char* name) { return std::getenv(name); });
}

}  // namespace nz::rt
