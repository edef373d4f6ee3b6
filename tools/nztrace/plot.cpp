// plot.cpp: see plot.h. Sizes are shown in MiB, time in seconds.
#include "plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace nztrace {

namespace {

constexpr double kWidth = 960, kHeight = 460;
constexpr double kLeft = 80, kRight = 24, kTop = 48, kBottom = 96;  // room for axes and the legend
constexpr double kMiB = 1024.0 * 1024.0;

// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `ticks` ticks.
double tick_step(double range, int ticks) {
  if (range <= 0) return 1;
  const double raw = range / ticks;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (raw <= m * p) return m * p;
  return 10 * p;
}

std::string number(double v) {
  // Enough digits for tick labels, none of the float noise.
  std::string s = fmt::format("{:.3f}", v);
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

// At most `columns` x-buckets, each keeping its first, lowest, highest and
// last value in time order, so that a long trace draws fast and no peak is
// lost.
std::vector<PlotPoint> reduce(const std::vector<PlotPoint>& in, double t_max, size_t columns) {
  if (in.size() <= 4 * columns || t_max <= 0) return in;
  std::vector<PlotPoint> out;
  size_t i = 0;
  while (i < in.size()) {
    const size_t col = std::min(columns - 1, static_cast<size_t>(in[i].t_s / t_max * columns));
    size_t j = i, lo = i, hi = i;
    while (j < in.size() && std::min(columns - 1, static_cast<size_t>(in[j].t_s / t_max * columns)) == col) {
      if (in[j].bytes < in[lo].bytes) lo = j;
      if (in[j].bytes > in[hi].bytes) hi = j;
      ++j;
    }
    std::vector<size_t> keep = {i, lo, hi, j - 1};
    std::sort(keep.begin(), keep.end());
    keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
    for (size_t k : keep) out.push_back(in[k]);
    i = j;
  }
  return out;
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_svg(const PlotChart& chart) {
  double t_max = 0, y_max = 0;
  for (const auto& s : chart.series) {
    for (const auto& p : s.points) {
      t_max = std::max(t_max, p.t_s);
      y_max = std::max(y_max, p.bytes / kMiB);
    }
  }
  if (t_max <= 0) t_max = 1;
  const double y_step = tick_step(y_max > 0 ? y_max : 1, 6);
  const double y_top = std::max(y_step, std::ceil(y_max * 1.08 / y_step) * y_step);
  const double x_step = tick_step(t_max, 8);
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto X = [&](double t) { return kLeft + t / t_max * pw; };
  auto Y = [&](double mib) { return kTop + ph - mib / y_top * ph; };

  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"28\" font-size=\"16\" font-weight=\"bold\">{3}</text>\n",
      kWidth, kHeight, kLeft, xml_escape(chart.title));
  // Grid and axes.
  for (double v = 0; v <= y_top + y_step / 2; v += y_step) {
    o += fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e4e4e4\"/>\n", kLeft, Y(v),
                     kLeft + pw, Y(v));
    o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", kLeft - 6, Y(v) + 4, number(v));
  }
  for (double t = 0; t <= t_max + x_step / 1000; t += x_step) {
    o += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#f0f0f0\"/>\n", X(t),
                     kTop, kTop + ph);
    o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", X(t), kTop + ph + 16,
                     number(t));
  }
  o += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n", kLeft, kTop,
                   pw, ph);
  o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">time since the run's first event (s)</text>\n",
                   kLeft + pw / 2, kTop + ph + 34);
  o += fmt::format("<text transform=\"translate(18 {:.1f}) rotate(-90)\" text-anchor=\"middle\">device memory (MiB)</text>\n",
                   kTop + ph / 2);

  // Series: step lines, then peak markers on top.
  std::string markers;
  double legend_x = kLeft, legend_y = kTop + ph + 58;
  for (const auto& s : chart.series) {
    if (s.points.empty()) continue;
    const auto pts = reduce(s.points, t_max, static_cast<size_t>(pw));
    std::string path;
    double prev = pts.front().bytes / kMiB;
    for (size_t i = 0; i < pts.size(); ++i) {
      const double y = pts[i].bytes / kMiB;
      if (i > 0) path += fmt::format(" {:.1f},{:.1f}", X(pts[i].t_s), Y(prev));
      path += fmt::format(" {:.1f},{:.1f}", X(pts[i].t_s), Y(y));
      prev = y;
    }
    o += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{} points=\"{}\"/>\n", s.color,
                     s.dashed ? 1.5 : 2, s.dashed ? " stroke-dasharray=\"6 4\"" : "", path);
    if (!s.end_note.empty()) {
      const double ex = X(pts.back().t_s), ey = Y(pts.back().bytes / kMiB);
      markers += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"/>\n", ex, ey, s.color);
      markers += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"{}\">{}</text>\n", ex + 6, ey + 16, s.color,
                             xml_escape(s.end_note));
    }
    if (s.mark_peak) {
      const auto peak = std::max_element(s.points.begin(), s.points.end(),
                                         [](const PlotPoint& a, const PlotPoint& b) { return a.bytes < b.bytes; });
      const double px = X(peak->t_s), py = Y(peak->bytes / kMiB);
      const bool right_half = px > kLeft + pw * 0.7;
      markers += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"4.5\" fill=\"{}\" stroke=\"white\"/>\n", px, py,
                             s.color);
      markers += fmt::format(
          "<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\" fill=\"{}\" font-weight=\"bold\">peak {:.1f} MiB</text>\n",
          right_half ? px - 8 : px + 8, py - 8, right_half ? "end" : "start", s.color, peak->bytes / kMiB);
    }
    const double legend_width = 44 + 6.6 * static_cast<double>(s.label.size());
    if (legend_x > kLeft && legend_x + legend_width > kWidth) legend_x = kLeft, legend_y += 18;
    o += fmt::format("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{2:.1f}\" y2=\"{1:.1f}\" stroke=\"{3}\" stroke-width=\"2\"{4}/>\n",
                     legend_x, legend_y - 4, legend_x + 24, s.color, s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    o += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", legend_x + 30, legend_y, xml_escape(s.label));
    legend_x += legend_width;
  }
  return o + markers + "</svg>\n";
}

std::string render_html(const PlotChart& chart, const std::string& details_html) {
  return fmt::format(
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title>\n"
      "<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}} "
      "td,th{{padding:2px 10px;text-align:right}} td:first-child,th:first-child{{text-align:left}}</style>\n"
      "</head><body>\n{1}{2}\n</body></html>\n",
      xml_escape(chart.title), render_svg(chart), details_html);
}

}  // namespace nztrace
