// outputs.h: the files nztrace writes besides its report: --perfetto
// (trace-event JSON) and --plot (SVG, or an HTML page when FILE ends in .html).
#pragma once

#include <string>
#include <vector>

#include "compare.h"

namespace nztrace {

// Writes `text` to `path`; false with `error` when it cannot.
bool write_text_file(const std::string& path, const std::string& text, std::string& error);

// `runs`: one run, or the two of --compare (without first). False with
// `error` when the file cannot be written.
bool write_perfetto(const std::string& path, const std::vector<const TracedRun*>& runs, std::string& error);
bool write_plot(const std::string& path, const std::vector<const TracedRun*>& runs, std::string& error);

}  // namespace nztrace
