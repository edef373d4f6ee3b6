// report.h: vmmprobe's table and JSON renderings of a ProbeReport.
#pragma once

#include <string>

#include "probes.h"

namespace vmmprobe {

std::string render_table(const ProbeOptions& opts, const ProbeReport& rep);
std::string render_json(const ProbeOptions& opts, const ProbeReport& rep);

}  // namespace vmmprobe
