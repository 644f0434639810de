// Hand-written SVG (no plotting library for C++ in Debian; see the header):
// one small Axes helper for log or linear axes with ticks, labels and a
// legend, and the two figures of `isoflop report`.
#include "cli/report_svg.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace isoflop::cli {
namespace {

constexpr double kWidth = 800, kHeight = 500;
constexpr double kLeft = 80, kRight = 560, kTop = 40, kBottom = 430;
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                   "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                   "#bcbd22", "#17becf"};

const char* Color(size_t i) {
  return kColors[i % (sizeof(kColors) / sizeof(kColors[0]))];
}

// "1e+21" -> "10²¹"-free plain text: "1e21", short and unambiguous.
std::string Sci(double v) {
  std::string s = absl::StrFormat("%.3g", v);
  const size_t e = s.find("e+");
  if (e != std::string::npos) s.erase(e + 1, 1);
  return s;
}

struct Range {
  double lo = INFINITY, hi = -INFINITY;
  bool log = false;  // for a log axis: values <= 0 are left out
  void Add(double v) {
    if (!std::isfinite(v) || (log && v <= 0)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool Empty() const { return !(lo <= hi); }
};

// One axis: data range -> pixel range, log10 or linear.
class Axis {
 public:
  Axis(Range r, bool log, double px_lo, double px_hi)
      : log_(log), px_lo_(px_lo), px_hi_(px_hi) {
    if (r.Empty()) r = log ? Range{1, 10} : Range{0, 1};
    if (log) {
      // Out to the nearest 1, 2 or 5 x 10^k, so that a narrow range of N
      // (less than a decade) fills the plot.
      lo_ = std::log10(Nice(std::max(r.lo, DBL_MIN), /*up=*/false));
      hi_ = std::log10(Nice(std::max(r.hi, DBL_MIN), /*up=*/true));
      if (hi_ <= lo_) hi_ = lo_ + 1;
      // A confidence bound near 0 must not stretch the plot over hundreds
      // of decades: keep the top kMaxDecades; what lies below is clamped.
      lo_ = std::max(lo_, hi_ - kMaxDecades);
    } else {
      const double pad = r.hi > r.lo ? 0.05 * (r.hi - r.lo) : 0.5;
      lo_ = r.lo - pad;
      hi_ = r.hi + pad;
    }
  }
  double operator()(double v) const {
    const double t = std::clamp(
        ((log_ ? std::log10(v) : v) - lo_) / (hi_ - lo_), -0.05, 1.05);
    return px_lo_ + t * (px_hi_ - px_lo_);
  }
  // Tick values: each decade (log; 2 and 5 too when it spans < 3 decades),
  // or 1, 2, 5 x 10^k steps (linear).
  std::vector<double> Ticks() const {
    std::vector<double> ticks;
    if (log_) {
      for (double k = std::floor(lo_ + 1e-9); k <= hi_ + 1e-9; ++k) {
        for (double m : {1.0, 2.0, 5.0}) {
          if (m != 1 && hi_ - lo_ >= 3) continue;
          const double e = std::log10(m) + k;
          if (e >= lo_ - 1e-9 && e <= hi_ + 1e-9) {
            ticks.push_back(m * std::pow(10, k));
          }
        }
      }
      return ticks;
    }
    const double raw = (hi_ - lo_) / 6;
    const double mag = std::pow(10, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {2.0, 5.0, 10.0}) {
      if (step < raw) step = m * mag;
    }
    for (double v = std::ceil(lo_ / step) * step; v <= hi_; v += step) {
      ticks.push_back(std::abs(v) < 1e-12 * step ? 0 : v);
    }
    return ticks;
  }
  bool log() const { return log_; }
  static constexpr double kMaxDecades = 12;
  // The nearest 1, 2 or 5 x 10^k at or below (above, if `up`) v > 0.
  static double Nice(double v, bool up) {
    const double p = std::pow(10, std::floor(std::log10(v) + 1e-9));
    if (up) {
      for (double m : {1.0, 2.0, 5.0}) {
        if (m * p >= v * (1 - 1e-9)) return m * p;
      }
      return 10 * p;
    }
    for (double m : {5.0, 2.0}) {
      if (m * p <= v * (1 + 1e-9)) return m * p;
    }
    return p;
  }

 private:
  bool log_;
  double lo_ = 0, hi_ = 1, px_lo_, px_hi_;
};

class Figure {
 public:
  Figure(const std::string& title, Axis x, Axis y, const std::string& x_label,
         const std::string& y_label)
      : x_(x), y_(y) {
    absl::StrAppendFormat(
        &svg_,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
        "height=\"%g\" viewBox=\"0 0 %g %g\" font-family=\"Helvetica, "
        "Arial, sans-serif\" font-size=\"12\">\n"
        "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
        "<text x=\"%g\" y=\"24\" text-anchor=\"middle\" "
        "font-size=\"15\">%s</text>\n",
        kWidth, kHeight, kWidth, kHeight, (kLeft + kRight) / 2, title);
    absl::StrAppend(&svg_, "<g class=\"axes\" stroke=\"#444\">\n");
    absl::StrAppendFormat(&svg_,
                          "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" "
                          "fill=\"none\"/>\n",
                          kLeft, kTop, kRight - kLeft, kBottom - kTop);
    for (double t : x_.Ticks()) {
      const double px = x_(t);
      absl::StrAppendFormat(
          &svg_,
          "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\"/>"
          "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\" "
          "stroke=\"none\">%s</text>\n",
          px, kBottom, px, kBottom + 5, px, kBottom + 19,
          x_.log() ? Sci(t) : absl::StrFormat("%g", t));
    }
    for (double t : y_.Ticks()) {
      const double py = y_(t);
      absl::StrAppendFormat(
          &svg_,
          "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\"/>"
          "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\" "
          "stroke=\"none\">%s</text>\n",
          kLeft - 5, py, kLeft, py, kLeft - 8, py + 4,
          y_.log() ? Sci(t) : absl::StrFormat("%g", t));
    }
    absl::StrAppendFormat(
        &svg_,
        "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" "
        "stroke=\"none\">%s</text>\n"
        "<text transform=\"translate(22 %g) rotate(-90)\" "
        "text-anchor=\"middle\" stroke=\"none\">%s</text>\n</g>\n",
        (kLeft + kRight) / 2, kBottom + 42, x_label, (kTop + kBottom) / 2,
        y_label);
  }

  // "M x y L x y ..." through the points inside the plot's finite range.
  std::string Path(const std::vector<std::pair<double, double>>& xy) const {
    std::string d;
    for (const auto& [x, y] : xy) {
      if (!std::isfinite(x) || !std::isfinite(y) || x <= 0) continue;
      if (y_.log() && y <= 0) continue;
      absl::StrAppendFormat(&d, "%s%.1f %.1f ", d.empty() ? "M" : "L", x_(x),
                            y_(y));
    }
    return d;
  }
  void Raw(const std::string& text) { absl::StrAppend(&svg_, text); }
  void Line(const std::vector<std::pair<double, double>>& xy,
            const std::string& color, bool dashed, double width = 1.8) {
    const std::string d = Path(xy);
    if (d.empty()) return;
    absl::StrAppendFormat(&svg_,
                          "<path d=\"%s\" fill=\"none\" stroke=\"%s\" "
                          "stroke-width=\"%g\"%s/>\n",
                          d, color, width,
                          dashed ? " stroke-dasharray=\"6 4\"" : "");
  }
  void Band(const std::vector<double>& x, const std::vector<double>& lo,
            const std::vector<double>& hi, const std::string& color) {
    std::vector<std::pair<double, double>> ring;
    for (size_t i = 0; i < x.size(); ++i) ring.emplace_back(x[i], lo[i]);
    for (size_t i = x.size(); i-- > 0;) ring.emplace_back(x[i], hi[i]);
    const std::string d = Path(ring);
    if (d.empty()) return;
    absl::StrAppendFormat(&svg_,
                          "<path d=\"%sZ\" fill=\"%s\" fill-opacity=\"0.18\" "
                          "stroke=\"none\"/>\n",
                          d, color);
  }
  void Marker(double x, double y, const std::string& color, bool diamond) {
    if (!std::isfinite(x) || !std::isfinite(y)) return;
    const double px = x_(x), py = y_(y);
    if (diamond) {
      absl::StrAppendFormat(&svg_,
                            "<path d=\"M%.1f %.1f l6 6 l-6 6 l-6 -6 Z\" "
                            "fill=\"%s\" stroke=\"black\"/>\n",
                            px, py - 6, color);
    } else {
      absl::StrAppendFormat(&svg_,
                            "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" "
                            "fill=\"%s\" stroke=\"white\"/>\n",
                            px, py, color);
    }
  }
  // A dotted vertical line at x, labelled at the top.
  void VerticalLine(double x, const std::string& label) {
    const double px = x_(x);
    absl::StrAppendFormat(&svg_,
                          "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" "
                          "y2=\"%g\" stroke=\"#888\" "
                          "stroke-dasharray=\"2 3\"/><text x=\"%.1f\" "
                          "y=\"%g\" fill=\"#666\">%s</text>\n",
                          px, kTop, px, kBottom, px + 4, kTop + 14, label);
  }
  void Legend(const std::string& label, const std::string& color, bool dashed) {
    const double y = kTop + 10 + 18 * legend_rows_++;
    absl::StrAppendFormat(&svg_,
                          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" "
                          "stroke=\"%s\" stroke-width=\"2\"%s/>"
                          "<text x=\"%g\" y=\"%g\">%s</text>\n",
                          kRight + 16, y, kRight + 40, y, color,
                          dashed ? " stroke-dasharray=\"6 4\"" : "",
                          kRight + 46, y + 4, label);
  }
  std::string Finish() { return absl::StrCat(svg_, "</svg>\n"); }

 private:
  Axis x_, y_;
  std::string svg_;
  int legend_rows_ = 0;
};

std::string Note(const std::string& text) {
  return absl::StrFormat(
      "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" "
      "fill=\"#888\">%s</text>\n",
      (kLeft + kRight) / 2, (kTop + kBottom) / 2, text);
}

}  // namespace

std::string IsoFlopProfilesSvg(const std::vector<ProfileSeries>& series) {
  Range n_range{.log = true}, loss_range;
  for (const ProfileSeries& s : series) {
    for (const auto& [n, loss] : s.points) {
      n_range.Add(n);
      loss_range.Add(loss);
    }
  }
  Figure fig("IsoFLOP profiles: final validation loss against N",
             Axis(n_range, true, kLeft, kRight),
             Axis(loss_range, false, kBottom, kTop), "parameters N (n_total)",
             "final validation loss (nats/token)");
  if (n_range.Empty()) fig.Raw(Note("no finished trials yet"));
  for (size_t i = 0; i < series.size(); ++i) {
    const ProfileSeries& s = series[i];
    const std::string color = Color(i);
    fig.Raw(absl::StrFormat("<g class=\"series\" data-flops=\"%s\">\n",
                            Sci(s.flops)));
    Range budget_n{.log = true};
    for (const auto& [n, loss] : s.points) budget_n.Add(n);
    if (s.parabola.has_value() && !budget_n.Empty()) {
      const std::vector<double>& c = *s.parabola;
      std::vector<std::pair<double, double>> curve;
      const double lo = std::log(budget_n.lo), hi = std::log(budget_n.hi);
      for (int k = 0; k <= 60; ++k) {
        const double x = lo + (hi - lo) * k / 60;
        curve.emplace_back(std::exp(x), c[0] + c[1] * x + c[2] * x * x);
      }
      fig.Line(curve, color, false);
      if (c[2] > 0) {
        const double x = -c[1] / (2 * c[2]);
        if (x >= lo && x <= hi) {
          fig.Marker(std::exp(x), c[0] + c[1] * x + c[2] * x * x, color, true);
        }
      }
    }
    for (const auto& [n, loss] : s.points) fig.Marker(n, loss, color, false);
    fig.Raw("</g>\n");
    fig.Legend(absl::StrCat("C = ", Sci(s.flops)), color, false);
  }
  fig.Legend("◆ parabola vertex", "none", false);
  return fig.Finish();
}

std::string FrontierSvg(const FrontierData& data) {
  Range c_range{.log = true}, y_range{.log = true};
  for (double c : data.flops) c_range.Add(c);
  for (const auto* v : {&data.n_opt, &data.d_opt, &data.n_low, &data.n_high,
                        &data.d_low, &data.d_high}) {
    for (double y : *v) y_range.Add(y);
  }
  for (const auto* pts : {&data.a2_n_points, &data.a2_d_points}) {
    for (const auto& [c, y] : *pts) {
      c_range.Add(c);
      y_range.Add(y);
    }
  }
  Figure fig("Compute-optimal frontier", Axis(c_range, true, kLeft, kRight),
             Axis(y_range, true, kBottom, kTop), "compute budget C (FLOPs)",
             "N_opt (parameters), D_opt (tokens)");
  if (c_range.Empty()) fig.Raw(Note("no fit yet"));
  const std::string n_color = Color(0), d_color = Color(1);
  if (!data.n_low.empty()) {
    fig.Band(data.flops, data.n_low, data.n_high, n_color);
    fig.Band(data.flops, data.d_low, data.d_high, d_color);
  }
  std::vector<std::pair<double, double>> n_line, d_line;
  for (size_t i = 0; i < data.flops.size(); ++i) {
    n_line.emplace_back(data.flops[i], data.n_opt[i]);
    d_line.emplace_back(data.flops[i], data.d_opt[i]);
  }
  fig.Line(n_line, n_color, false, 2.2);
  fig.Line(d_line, d_color, false, 2.2);
  const auto law_line = [&](const std::pair<double, double>& law,
                            const std::string& color) {
    std::vector<std::pair<double, double>> line;
    for (double c : data.flops) {
      line.emplace_back(c, law.first * std::pow(c, law.second));
    }
    fig.Line(line, color, true, 1.4);
  };
  if (data.a2_n_law) law_line(*data.a2_n_law, n_color);
  if (data.a2_d_law) law_line(*data.a2_d_law, d_color);
  if (data.largest_budget > 0) {
    fig.VerticalLine(data.largest_budget, "C_max (sweep)");
  }
  for (const auto& [c, y] : data.marks) fig.Marker(c, y, "black", false);
  for (const auto& [c, n] : data.a2_n_points) fig.Marker(c, n, n_color, true);
  for (const auto& [c, d] : data.a2_d_points) fig.Marker(c, d, d_color, true);
  if (!data.flops.empty()) {
    fig.Legend("N_opt, Approach 3", n_color, false);
    fig.Legend("D_opt, Approach 3", d_color, false);
    if (!data.n_low.empty()) {
      fig.Legend("(bands: bootstrap 95%)", "none", false);
    }
    if (!data.marks.empty()) {
      fig.Legend("● 10×, 100×, 1000× C_max", "none", false);
    }
  }
  if (data.a2_n_law || !data.a2_n_points.empty()) {
    fig.Legend("Approach 2 (◆ vertices)", "#444", true);
  }
  return fig.Finish();
}

}  // namespace isoflop::cli
