// report.h: nzbench's output, a text table or one JSON object (docs/NZBENCH.md).
#pragma once

#include <string>
#include <vector>

#include "bench_types.h"

namespace nzbench {

std::string render_json(const Options& opts, const std::vector<TensorResult>& results, const TotalResult& total,
                        const std::vector<Skipped>& skipped);
std::string render_text(const Options& opts, const std::vector<TensorResult>& results, const TotalResult& total,
                        const std::vector<Skipped>& skipped);

}  // namespace nzbench
