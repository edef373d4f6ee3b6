// report.h: nzbench's output, a text table or one JSON object (docs/NZBENCH.md).
#pragma once

#include <string>
#include <vector>

#include "bench_types.h"

namespace nzbench {

// `gpu`: the --gpu results, or null without --gpu (the JSON then has no "gpu" key).
std::string render_json(const Options& opts, const std::vector<TensorResult>& results, const TotalResult& total,
                        const std::vector<Skipped>& skipped, const GpuReport* gpu = nullptr);
std::string render_text(const Options& opts, const std::vector<TensorResult>& results, const TotalResult& total,
                        const std::vector<Skipped>& skipped, const GpuReport* gpu = nullptr);

}  // namespace nzbench
