// plot.h: device memory over time as a self-contained SVG chart (or an HTML
// page around it), for `nztrace --plot`. No plotting library: the chart is
// a few polylines, axes and labels, readable in any browser and renderable
// with rsvg-convert.
#pragma once

#include <string>
#include <vector>

namespace nztrace {

struct PlotPoint {
  double t_s = 0;    // seconds since the run's first event
  double bytes = 0;  // holds until the next point (a step function)
};

struct PlotSeries {
  std::string label;
  std::string color;        // any SVG colour
  bool dashed = false;
  bool mark_peak = false;   // a dot and its value at the maximum
  std::string end_note;     // written where the line ends (e.g. "exit 3"), if not empty
  std::vector<PlotPoint> points;
};

struct PlotChart {
  std::string title;
  std::vector<PlotSeries> series;
};

std::string render_svg(const PlotChart& chart);
// An HTML page with the SVG inline, the title, and `details_html` under it.
std::string render_html(const PlotChart& chart, const std::string& details_html);

// Escapes &, <, >, " for SVG/HTML text and attributes.
std::string xml_escape(const std::string& s);

}  // namespace nztrace
