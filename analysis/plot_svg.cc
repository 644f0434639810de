// Hand-written SVG (see the header): an Axis (log or linear, ticks with at
// most 4 significant digits), a Plot (one framed panel with a clip path,
// lines, bands, markers and a legend), and the figures built from them.
#include "analysis/plot_svg.h"

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace isoflop::analysis {
namespace {

constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                   "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                   "#bcbd22", "#17becf"};

const char* Color(size_t i) {
  return kColors[i % (sizeof(kColors) / sizeof(kColors[0]))];
}

// "1e+21" -> "1e21": short, unambiguous, at most 3 significant digits.
std::string Sci(double v) {
  std::string s = absl::StrFormat("%.3g", v);
  const size_t e = s.find("e+");
  if (e != std::string::npos) s.erase(e + 1, 1);
  return s;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&') {
      out += "&amp;";
    } else if (c == '<') {
      out += "&lt;";
    } else if (c == '>') {
      out += "&gt;";
    } else {
      out += c;
    }
  }
  return out;
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
      // A value near 0 must not stretch the plot over hundreds of decades:
      // keep the top kMaxDecades; what lies below is clipped.
      lo_ = std::max(lo_, hi_ - kMaxDecades);
    } else {
      const double pad = r.hi > r.lo ? 0.06 * (r.hi - r.lo)
                                     : std::max(0.5 * std::abs(r.lo), 1e-3);
      lo_ = r.lo - pad;
      hi_ = r.hi + pad;
    }
  }
  // The pixel of v, unclamped (within ten plot widths, for paths that the
  // clip path cuts).
  double Px(double v) const {
    const double t = std::clamp(
        ((log_ ? std::log10(v) : v) - lo_) / (hi_ - lo_), -10.0, 11.0);
    return px_lo_ + t * (px_hi_ - px_lo_);
  }
  // The pixel of a marker: one outside the range sits on the frame.
  double operator()(double v) const {
    const double t = std::clamp(
        ((log_ ? std::log10(v) : v) - lo_) / (hi_ - lo_), -0.02, 1.02);
    return px_lo_ + t * (px_hi_ - px_lo_);
  }
  // Tick values: each decade (log; 2 and 5 too when it spans < 3 decades,
  // every k-th decade past 8), or 1, 2, 5 x 10^k steps (linear).
  std::vector<double> Ticks() const {
    std::vector<double> ticks;
    if (log_) {
      const double span = hi_ - lo_;
      const int every = span > 8 ? static_cast<int>(std::ceil(span / 8)) : 1;
      for (double k = std::floor(lo_ + 1e-9); k <= hi_ + 1e-9; ++k) {
        if (static_cast<int64_t>(k) % every != 0) continue;
        for (double m : {1.0, 2.0, 5.0}) {
          // 2 and 5 too while they fit (about 45 px a label).
          if (m != 1 &&
              (span >= 3 || span * 3 * 45 > std::abs(px_hi_ - px_lo_)))
            continue;
          const double e = std::log10(m) + k;
          if (e >= lo_ - 1e-9 && e <= hi_ + 1e-9) {
            ticks.push_back(m * std::pow(10, k));
          }
        }
      }
      return ticks;
    }
    const double step = Step();
    for (double k = std::ceil(lo_ / step - 1e-9); k * step <= hi_ + 1e-9 * step;
         ++k) {
      ticks.push_back(k == 0 ? 0 : k * step);
    }
    return ticks;
  }
  // A tick's label: at most 4 significant digits.
  std::string Label(double t) const {
    if (log_) return Sci(t);
    return absl::StrFormat("%.4g", t);
  }
  bool log() const { return log_; }
  bool Contains(double v) const {
    if (!std::isfinite(v) || (log_ && v <= 0)) return false;
    const double x = log_ ? std::log10(v) : v;
    return x >= lo_ - 1e-9 * std::abs(lo_) && x <= hi_ + 1e-9 * std::abs(hi_);
  }
  // The data range shown, in data units.
  double lo() const { return log_ ? std::pow(10, lo_) : lo_; }
  double hi() const { return log_ ? std::pow(10, hi_) : hi_; }
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
  double Step() const {
    const double raw = (hi_ - lo_) / 6;
    const double mag = std::pow(10, std::floor(std::log10(raw)));
    double step = mag;
    for (double m : {2.0, 5.0, 10.0}) {
      if (step < raw) step = m * mag;
    }
    return step;
  }
  bool log_;
  double lo_ = 0, hi_ = 1, px_lo_, px_hi_;
};

// The plot area of one panel, in pixels.
struct Frame {
  double left, top, right, bottom;
};

// One framed panel appended to an SVG body: axes, ticks, labels, title, a
// clip path for its lines, and a legend at its right or inside it.
class Plot {
 public:
  Plot(std::string* out, const Frame& f, const Range& x, bool x_log,
       const Range& y, bool y_log, const std::string& title,
       const std::string& x_label, const std::string& y_label,
       double legend_x = -1)
      : out_(out),
        f_(f),
        x_(x, x_log, f.left, f.right),
        y_(y, y_log, f.bottom, f.top),
        legend_x_(legend_x < 0 ? f.left + 8 : legend_x) {
    static std::atomic<int> next_clip{0};
    clip_ = absl::StrCat("plot", next_clip.fetch_add(1));
    absl::StrAppendFormat(out_,
                          "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" "
                          "font-size=\"15\">%s</text>\n",
                          (f.left + f.right) / 2, f.top - 14, Escape(title));
    absl::StrAppend(out_, "<g class=\"axes\" stroke=\"#444\">\n");
    absl::StrAppendFormat(out_,
                          "<rect class=\"frame\" x=\"%g\" y=\"%g\" "
                          "width=\"%g\" height=\"%g\" fill=\"none\"/>\n",
                          f.left, f.top, f.right - f.left, f.bottom - f.top);
    for (double t : x_.Ticks()) {
      const double px = x_(t);
      absl::StrAppendFormat(
          out_,
          "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\"/>"
          "<text class=\"tick x\" x=\"%.1f\" y=\"%g\" text-anchor=\"middle\" "
          "stroke=\"none\">%s</text>\n",
          px, f.bottom, px, f.bottom + 5, px, f.bottom + 19, x_.Label(t));
    }
    for (double t : y_.Ticks()) {
      const double py = y_(t);
      absl::StrAppendFormat(
          out_,
          "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\"/>"
          "<text class=\"tick y\" x=\"%g\" y=\"%.1f\" text-anchor=\"end\" "
          "stroke=\"none\">%s</text>\n",
          f.left - 5, py, f.left, py, f.left - 8, py + 4, y_.Label(t));
    }
    absl::StrAppendFormat(
        out_,
        "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\" "
        "stroke=\"none\">%s</text>\n"
        "<text transform=\"translate(%g %g) rotate(-90)\" "
        "text-anchor=\"middle\" stroke=\"none\">%s</text>\n</g>\n"
        "<clipPath id=\"%s\"><rect x=\"%g\" y=\"%g\" width=\"%g\" "
        "height=\"%g\"/></clipPath>\n",
        (f.left + f.right) / 2, f.bottom + 40, Escape(x_label), f.left - 58,
        (f.top + f.bottom) / 2, Escape(y_label), clip_, f.left, f.top,
        f.right - f.left, f.bottom - f.top);
  }

  const Axis& x() const { return x_; }
  const Axis& y() const { return y_; }

  // "M x y L x y ..." through the finite points (> 0 on a log axis); a gap
  // where a point is missing starts a new piece.
  std::string Path(const std::vector<std::pair<double, double>>& xy) const {
    std::string d;
    bool pen = false;
    for (const auto& [x, y] : xy) {
      if (!Drawable(x, y)) {
        pen = false;
        continue;
      }
      absl::StrAppendFormat(&d, "%s%.1f %.1f ", pen ? "L" : "M", x_.Px(x),
                            y_.Px(y));
      pen = true;
    }
    return d;
  }
  void Line(const std::vector<std::pair<double, double>>& xy,
            const std::string& color, const std::string& dash,
            double width = 1.8, const std::string& cls = "line") {
    const std::string d = Path(xy);
    if (d.empty()) return;
    absl::StrAppendFormat(
        out_,
        "<path d=\"%s\" class=\"%s\" fill=\"none\" "
        "stroke=\"%s\" stroke-width=\"%g\"%s "
        "clip-path=\"url(#%s)\"/>\n",
        d, cls, color, width,
        dash.empty() ? "" : absl::StrCat(" stroke-dasharray=\"", dash, "\""),
        clip_);
  }
  // A filled band between lo and hi, drawn only over the runs of x where
  // both bounds are drawable (> 0 on a log axis): it never drops to 0.
  void Band(const std::vector<double>& x, const std::vector<double>& lo,
            const std::vector<double>& hi, const std::string& color) {
    size_t i = 0;
    const size_t n = std::min({x.size(), lo.size(), hi.size()});
    while (i < n) {
      while (i < n && !(Drawable(x[i], lo[i]) && Drawable(x[i], hi[i]))) ++i;
      size_t j = i;
      while (j < n && Drawable(x[j], lo[j]) && Drawable(x[j], hi[j])) ++j;
      if (j - i >= 2) {
        std::string d;
        for (size_t k = i; k < j; ++k) {
          absl::StrAppendFormat(&d, "%s%.1f %.1f ", k == i ? "M" : "L",
                                x_.Px(x[k]), y_.Px(lo[k]));
        }
        for (size_t k = j; k-- > i;) {
          absl::StrAppendFormat(&d, "L%.1f %.1f ", x_.Px(x[k]), y_.Px(hi[k]));
        }
        absl::StrAppendFormat(out_,
                              "<path d=\"%sZ\" class=\"band\" fill=\"%s\" "
                              "fill-opacity=\"0.18\" stroke=\"none\" "
                              "clip-path=\"url(#%s)\"/>\n",
                              d, color, clip_);
      }
      i = j;
    }
  }
  enum class Shape { kCircle, kDiamond, kHollowDiamond, kCross };
  void Marker(double x, double y, const std::string& color, Shape shape,
              const std::string& cls = "") {
    if (!Drawable(x, y)) return;
    const double px = x_(x), py = y_(y);
    const std::string c =
        cls.empty() ? "" : absl::StrCat(" class=\"", cls, "\"");
    switch (shape) {
      case Shape::kCircle:
        absl::StrAppendFormat(out_,
                              "<circle%s cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" "
                              "fill=\"%s\" stroke=\"white\"/>\n",
                              c, px, py, color);
        break;
      case Shape::kDiamond:
      case Shape::kHollowDiamond:
        absl::StrAppendFormat(
            out_,
            "<path%s d=\"M%.1f %.1f l6 6 l-6 6 l-6 -6 Z\" fill=\"%s\" "
            "stroke=\"%s\" stroke-width=\"%s\"/>\n",
            c, px, py - 6, shape == Shape::kDiamond ? color : "white",
            shape == Shape::kDiamond ? "black" : color,
            shape == Shape::kDiamond ? "1" : "2");
        break;
      case Shape::kCross:
        absl::StrAppendFormat(out_,
                              "<path%s d=\"M%.1f %.1f l8 8 M%.1f %.1f l-8 8\" "
                              "stroke=\"%s\" stroke-width=\"2\"/>\n",
                              c, px - 4, py - 4, px + 4, py - 4, color);
        break;
    }
  }
  // A dotted vertical line at x, labelled at the top.
  void VerticalLine(double x, const std::string& label) {
    if (!x_.Contains(x)) return;
    const double px = x_(x);
    absl::StrAppendFormat(out_,
                          "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" "
                          "y2=\"%g\" stroke=\"#888\" "
                          "stroke-dasharray=\"2 3\"/><text x=\"%.1f\" "
                          "y=\"%g\" fill=\"#555\">%s</text>\n",
                          px, f_.top, px, f_.bottom, px + 4, f_.bottom - 6,
                          Escape(label));
  }
  // A horizontal line at y across the panel.
  void HorizontalLine(double y, const std::string& color) {
    if (!y_.Contains(y)) return;
    absl::StrAppendFormat(out_,
                          "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" "
                          "stroke=\"%s\" stroke-dasharray=\"4 3\"/>\n",
                          f_.left, y_(y), f_.right, y_(y), color);
  }
  // A legend row: a line sample (dash "none": no sample) and the text.
  void Legend(const std::string& label, const std::string& color,
              const std::string& dash = "") {
    const double y = f_.top + 14 + 16 * legend_rows_++;
    if (color != "none") {
      absl::StrAppendFormat(
          out_,
          "<line x1=\"%g\" y1=\"%g\" x2=\"%g\" y2=\"%g\" stroke=\"%s\" "
          "stroke-width=\"2\"%s/>",
          legend_x_, y, legend_x_ + 22, y, color,
          dash.empty() ? "" : absl::StrCat(" stroke-dasharray=\"", dash, "\""));
    }
    absl::StrAppendFormat(out_,
                          "<text class=\"legend\" x=\"%g\" y=\"%g\" "
                          "font-size=\"11\">%s</text>\n",
                          legend_x_ + 28, y + 4, Escape(label));
  }
  // Grey text across the panel, a line under the title (row 0, 1, ..).
  void Note(const std::string& text, int row = 0) {
    absl::StrAppendFormat(out_,
                          "<text class=\"note\" x=\"%g\" y=\"%g\" "
                          "text-anchor=\"middle\" fill=\"#555\" "
                          "font-size=\"11\">%s</text>\n",
                          (f_.left + f_.right) / 2, f_.top + 16 + 14 * row,
                          Escape(text));
  }

 private:
  bool Drawable(double x, double y) const {
    return std::isfinite(x) && std::isfinite(y) && (!x_.log() || x > 0) &&
           (!y_.log() || y > 0);
  }
  std::string* out_;
  Frame f_;
  Axis x_, y_;
  double legend_x_;
  std::string clip_;
  int legend_rows_ = 0;
};

std::string Open(double width, double height) {
  return absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" "
      "height=\"%g\" viewBox=\"0 0 %g %g\" font-family=\"Helvetica, "
      "Arial, sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
      width, height, width, height);
}

constexpr double kWidth = 800, kHeight = 500;
constexpr Frame kFrame{90, 50, 560, 430};  // legend at its right
constexpr double kLegendX = 576;

double Predict(const Approach3Fit& f, double n, double d) {
  return f.e + f.a / std::pow(n, f.alpha) + f.b / std::pow(d, f.beta);
}

// The figure bodies (no <svg> element), for one file or the composite.
std::string ProfilesBody(const std::vector<ProfileSeries>& series,
                         const std::string& note) {
  Range n_range{.log = true}, loss_range;
  // Each budget's vertex, when the parabola is convex.
  std::vector<std::optional<std::pair<double, double>>> vertex(series.size());
  std::vector<bool> inside(series.size(), false);
  for (size_t i = 0; i < series.size(); ++i) {
    const ProfileSeries& s = series[i];
    Range own{.log = true};
    for (const auto& [n, loss] : s.points) {
      n_range.Add(n);
      loss_range.Add(loss);
      own.Add(n);
    }
    if (s.parabola && s.parabola->size() == 3 && (*s.parabola)[2] > 0 &&
        !own.Empty()) {
      const std::vector<double>& c = *s.parabola;
      const double x = -c[1] / (2 * c[2]);
      vertex[i] = {std::exp(x), c[0] + c[1] * x + c[2] * x * x};
      inside[i] = x >= std::log(own.lo) - 1e-9 && x <= std::log(own.hi) + 1e-9;
    }
  }
  // A vertex outside the sampled range widens the N axis up to a decade
  // beyond it (further out, it sits on the frame).
  if (!n_range.Empty()) {
    const double lo = n_range.lo, hi = n_range.hi;
    for (const auto& v : vertex) {
      if (v && v->first >= lo / 10 && v->first <= hi * 10) {
        n_range.Add(v->first);
        loss_range.Add(v->second);
      }
    }
  }
  std::string out;
  Plot plot(&out, kFrame, n_range, true, loss_range, false,
            "IsoFLOP profiles: final loss against N", "parameters N",
            "final validation loss (nats/token)", kLegendX);
  int row = 0;
  if (n_range.Empty()) plot.Note("no finished trials yet", row++);
  if (!note.empty()) plot.Note(note, row++);
  bool any_outside = false, any_law = false;
  for (size_t i = 0; i < series.size(); ++i) {
    const ProfileSeries& s = series[i];
    const std::string color = Color(i);
    absl::StrAppendFormat(&out, "<g class=\"series\" data-flops=\"%s\">\n",
                          Sci(s.flops));
    Range own{.log = true};
    for (const auto& [n, loss] : s.points) own.Add(n);
    if (s.parabola && s.parabola->size() == 3 && !own.Empty()) {
      const std::vector<double>& c = *s.parabola;
      double lo = std::log(own.lo), hi = std::log(own.hi);
      if (vertex[i]) {  // out to an outside vertex, so that it is on the curve
        lo = std::min(lo, std::log(std::max(vertex[i]->first, own.lo / 10)));
        hi = std::max(hi, std::log(std::min(vertex[i]->first, own.hi * 10)));
      }
      std::vector<std::pair<double, double>> curve;
      for (int k = 0; k <= 60; ++k) {
        const double x = lo + (hi - lo) * k / 60;
        curve.emplace_back(std::exp(x), c[0] + c[1] * x + c[2] * x * x);
      }
      plot.Line(curve, color, "", 1.8, "parabola");
    }
    if (!s.law.empty()) {
      plot.Line(s.law, color, "5 4", 1.2, "law");
      any_law = true;
    }
    if (vertex[i]) {
      plot.Marker(
          vertex[i]->first, vertex[i]->second, color,
          inside[i] ? Plot::Shape::kDiamond : Plot::Shape::kHollowDiamond,
          inside[i] ? "vertex inside" : "vertex outside");
      any_outside = any_outside || !inside[i];
    }
    for (const auto& [n, loss] : s.points) {
      plot.Marker(n, loss, color, Plot::Shape::kCircle);
    }
    out += "</g>\n";
    plot.Legend(absl::StrCat("C = ", Sci(s.flops)), color);
  }
  plot.Legend("◆ vertex inside sampled N", "none");
  if (any_outside) plot.Legend("◇ vertex outside: not bracketed", "none");
  if (any_law) plot.Legend("Approach 3 law", "#444", "5 4");
  return out;
}

std::string FrontierBody(const FrontierData& data, const std::string& note) {
  Range c_range{.log = true}, y_range{.log = true};
  for (double c : data.flops) c_range.Add(c);
  for (const auto* v : {&data.n_opt, &data.d_opt}) {
    for (double y : *v) y_range.Add(y);
  }
  for (const auto* pts : {&data.a2_n_points, &data.a2_d_points, &data.marks}) {
    for (const auto& [c, y] : *pts) {
      c_range.Add(c);
      y_range.Add(y);
    }
  }
  std::string out;
  Plot plot(&out, kFrame, c_range, true, y_range, true,
            "Compute-optimal frontier", "compute budget C (FLOPs)",
            "N_opt (parameters), D_opt (tokens)", kLegendX);
  int row = 0;
  if (c_range.Empty()) plot.Note("no fit yet", row++);
  if (!note.empty()) plot.Note(note, row++);
  const std::string n_color = Color(0), d_color = Color(1);
  if (!data.n_low.empty()) {
    plot.Band(data.flops, data.n_low, data.n_high, n_color);
    plot.Band(data.flops, data.d_low, data.d_high, d_color);
  }
  for (const Overlay& o : data.overlays) {
    plot.Line(o.xy, o.color, o.dash, 1.4, "overlay");
  }
  std::vector<std::pair<double, double>> n_line, d_line;
  for (size_t i = 0; i < data.flops.size(); ++i) {
    if (i < data.n_opt.size())
      n_line.emplace_back(data.flops[i], data.n_opt[i]);
    if (i < data.d_opt.size())
      d_line.emplace_back(data.flops[i], data.d_opt[i]);
  }
  plot.Line(n_line, n_color, "", 2.2);
  plot.Line(d_line, d_color, "", 2.2);
  std::vector<double> grid = data.flops;
  if (grid.empty() && !c_range.Empty()) {
    for (int k = 0; k <= 48; ++k) {
      grid.push_back(plot.x().lo() *
                     std::pow(plot.x().hi() / plot.x().lo(), k / 48.0));
    }
  }
  const auto law_line = [&](const std::pair<double, double>& law,
                            const std::string& color) {
    std::vector<std::pair<double, double>> line;
    for (double c : grid) {
      line.emplace_back(c, law.first * std::pow(c, law.second));
    }
    plot.Line(line, color, "6 4", 1.4);
  };
  if (data.a2_n_law) law_line(*data.a2_n_law, n_color);
  if (data.a2_d_law) law_line(*data.a2_d_law, d_color);
  if (data.largest_budget > 0) {
    plot.VerticalLine(data.largest_budget, "largest budget");
  }
  for (const auto& [c, y] : data.marks) {
    plot.Marker(c, y, "black", Plot::Shape::kCircle);
  }
  for (const auto& [c, n] : data.a2_n_points) {
    plot.Marker(c, n, n_color, Plot::Shape::kDiamond);
  }
  for (const auto& [c, d] : data.a2_d_points) {
    plot.Marker(c, d, d_color, Plot::Shape::kDiamond);
  }
  if (!data.flops.empty()) {
    plot.Legend("N_opt, Approach 3", n_color);
    plot.Legend("D_opt, Approach 3", d_color);
    if (!data.n_low.empty()) plot.Legend("shaded: bootstrap 95%", "none");
    if (!data.marks.empty()) plot.Legend("● 10×, 100×, 1000× largest", "none");
  }
  if (data.a2_n_law || !data.a2_n_points.empty()) {
    plot.Legend("Approach 2 (◆ vertices)", "#444", "6 4");
  }
  for (const Overlay& o : data.overlays) plot.Legend(o.label, o.color, o.dash);
  return out;
}

// Budgets in ascending order, for one colour each.
std::map<double, size_t> BudgetColours(const std::vector<FitPoint>& points) {
  std::map<double, size_t> colour;
  for (const FitPoint& p : points) colour[p.flops] = 0;
  size_t i = 0;
  for (auto& [c, k] : colour) k = i++;
  return colour;
}

constexpr double kResidualsWidth = 1200, kResidualsHeight = 400;

std::string ResidualsBody(const std::vector<FitPoint>& points,
                          const std::string& note) {
  std::string out;
  const auto colour = BudgetColours(points);
  Range r;
  for (const FitPoint& p : points) r.Add(p.observed - p.predicted);
  // Symmetric about 0, so that a bias shows.
  if (!r.Empty()) {
    const double m = std::max({std::abs(r.lo), std::abs(r.hi), 1e-6});
    r = Range{-m, m};
  }
  const struct {
    const char* label;
    double FitPoint::*field;
  } panels[] = {{"parameters N", &FitPoint::n},
                {"tokens D", &FitPoint::d},
                {"compute budget C (FLOPs)", &FitPoint::flops}};
  for (int k = 0; k < 3; ++k) {
    Range x{.log = true};
    for (const FitPoint& p : points) x.Add(p.*panels[k].field);
    const double left = 90 + 380.0 * k;
    Plot plot(&out, Frame{left, 50, left + 290, 330}, x, true, r, false,
              absl::StrCat("Residuals against ", panels[k].label),
              panels[k].label, k == 0 ? "observed − predicted loss" : "");
    if (k == 0 && points.empty()) plot.Note("no law: no residuals");
    if (k == 0 && !note.empty()) plot.Note(note, points.empty() ? 1 : 0);
    plot.HorizontalLine(0, "#444");
    for (const FitPoint& p : points) {
      plot.Marker(p.*panels[k].field, p.observed - p.predicted,
                  Color(colour.at(p.flops)), Plot::Shape::kCircle, "residual");
    }
  }
  return out;
}

std::string PredictedBody(const std::vector<FitPoint>& points,
                          const std::string& note) {
  Range r;
  for (const FitPoint& p : points) {
    r.Add(p.observed);
    r.Add(p.predicted);
  }
  std::string out;
  Plot plot(&out, kFrame, r, false, r, false, "Predicted against observed loss",
            "observed loss (nats/token)", "predicted loss (nats/token)",
            kLegendX);
  int row = 0;
  if (points.empty()) plot.Note("no law: nothing predicted", row++);
  if (!note.empty()) plot.Note(note, row++);
  if (!r.Empty()) {
    plot.Line({{plot.x().lo(), plot.x().lo()}, {plot.x().hi(), plot.x().hi()}},
              "#444", "4 3", 1.2, "identity");
  }
  const auto colour = BudgetColours(points);
  for (const FitPoint& p : points) {
    plot.Marker(p.observed, p.predicted, Color(colour.at(p.flops)),
                Plot::Shape::kCircle);
  }
  for (const auto& [c, k] : colour) {
    plot.Legend(absl::StrCat("C = ", Sci(c)), Color(k));
  }
  plot.Legend("y = x", "#444", "4 3");
  return out;
}

std::string BacktestBody(const std::optional<BacktestData>& data,
                         const std::string& why) {
  Range n{.log = true}, loss;
  if (data) {
    for (const FitPoint& p : data->points) {
      n.Add(p.n);
      loss.Add(p.observed);
      loss.Add(p.predicted);
    }
  }
  std::string out;
  Plot plot(&out, kFrame, n, true, loss, false,
            data ? absl::StrCat("Backtest: budget ", Sci(data->holdout_flops),
                                " predicted from the smaller ones")
                 : std::string("Backtest"),
            "parameters N", "final validation loss (nats/token)", kLegendX);
  if (!data) {
    plot.Note(absl::StrCat("no backtest",
                           why.empty() ? "" : absl::StrCat(": ", why)));
    return out;
  }
  plot.Note(absl::StrFormat(
      "mean |relative error| %.3g%% over %d points; law "
      "fitted on %d points",
      100 * data->mean_abs_relative_error,
      static_cast<int>(data->points.size()), data->train_points));
  std::vector<FitPoint> sorted = data->points;
  std::sort(sorted.begin(), sorted.end(),
            [](const FitPoint& a, const FitPoint& b) { return a.n < b.n; });
  // The refitted law along the holdout budget (its own D(N)).
  std::vector<std::pair<double, double>> n_d;
  for (const FitPoint& p : sorted) n_d.emplace_back(p.n, p.d);
  if (!n.Empty()) {
    plot.Line(LawAlongBudget(data->law, n_d, plot.x().lo(), plot.x().hi()),
              Color(3), "5 4", 1.5, "law");
  }
  for (const FitPoint& p : sorted) {
    plot.Marker(p.n, p.predicted, Color(3), Plot::Shape::kCross, "predicted");
    plot.Marker(p.n, p.observed, Color(0), Plot::Shape::kCircle, "observed");
  }
  plot.Legend("observed", Color(0));
  plot.Legend("predicted (×, dashed)", Color(3), "5 4");
  return out;
}

std::string Wrap(double width, double height, const std::string& body) {
  return absl::StrCat(Open(width, height), body, "</svg>\n");
}

std::string Translate(double x, double y, const std::string& body) {
  return absl::StrFormat("<g transform=\"translate(%g %g)\">\n%s</g>\n", x, y,
                         body);
}

}  // namespace

const std::vector<PublishedLaw>& PublishedLaws() {
  // Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models"),
  // Approach 3, eq. 10; Besiroglu et al. 2024 ("Chinchilla Scaling: A
  // replication attempt", Epoch AI), Table 1. See docs/architecture.md.
  static const auto* laws = new std::vector<PublishedLaw>{
      {"Chinchilla A3 (Hoffmann 2022)",
       LawWith(1.69, 406.4, 410.7, 0.34, 0.28)},
      {"Epoch (Besiroglu 2024)",
       LawWith(1.82, 482.01, 2085.43, 0.3478, 0.3658)}};
  return *laws;
}

std::vector<Overlay> PublishedOverlays(const std::vector<double>& flops) {
  std::vector<Overlay> out;
  const char* colours[] = {"#555555", "#9467bd"};
  const char* dashes[] = {"2 3", "8 3 2 3"};
  for (size_t i = 0; i < PublishedLaws().size(); ++i) {
    const PublishedLaw& p = PublishedLaws()[i];
    Overlay o{.label = p.label, .color = colours[i % 2], .dash = dashes[i % 2]};
    for (double c : flops) {
      // The papers' own convention, C = 6ND (flops.h).
      o.xy.emplace_back(c, ComputeOptimalFor(p.law, c).n_opt);
    }
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<std::pair<double, double>> LawAlongBudget(
    const Approach3Fit& law, const std::vector<std::pair<double, double>>& n_d,
    double n_lo, double n_hi) {
  std::vector<std::pair<double, double>> out;
  if (n_d.empty() || !(n_lo > 0) || !(n_hi >= n_lo)) return out;
  // Least squares of ln D on ln N; one distinct N: slope -1 (D = k / N).
  double mx = 0, my = 0;
  for (const auto& [n, d] : n_d) {
    mx += std::log(n);
    my += std::log(d);
  }
  const double count = static_cast<double>(n_d.size());
  mx /= count;
  my /= count;
  double sxx = 0, sxy = 0;
  for (const auto& [n, d] : n_d) {
    sxx += (std::log(n) - mx) * (std::log(n) - mx);
    sxy += (std::log(n) - mx) * (std::log(d) - my);
  }
  const double slope = sxx > 1e-12 ? sxy / sxx : -1;
  for (int k = 0; k <= 60; ++k) {
    const double n = n_lo * std::pow(n_hi / n_lo, k / 60.0);
    const double d = std::exp(my + slope * (std::log(n) - mx));
    out.emplace_back(n, Predict(law, n, d));
  }
  return out;
}

std::vector<FitPoint> PredictAll(const std::vector<Point>& points,
                                 const Approach3Fit& law) {
  std::vector<FitPoint> out;
  for (const Point& p : points) {
    out.push_back({.n = p.n,
                   .d = p.d,
                   .flops = p.budget > 0 ? p.budget : p.flops,
                   .observed = p.loss,
                   .predicted = Predict(law, p.n, p.d)});
  }
  return out;
}

std::string IsoFlopProfilesSvg(const std::vector<ProfileSeries>& series,
                               const std::string& note) {
  return Wrap(kWidth, kHeight, ProfilesBody(series, note));
}

std::string FrontierSvg(const FrontierData& data, const std::string& note) {
  return Wrap(kWidth, kHeight, FrontierBody(data, note));
}

std::string ResidualsSvg(const std::vector<FitPoint>& points,
                         const std::string& note) {
  return Wrap(kResidualsWidth, kResidualsHeight, ResidualsBody(points, note));
}

std::string PredictedVsObservedSvg(const std::vector<FitPoint>& points,
                                   const std::string& note) {
  return Wrap(kWidth, kHeight, PredictedBody(points, note));
}

std::string BacktestSvg(const std::optional<BacktestData>& data,
                        const std::string& why) {
  return Wrap(kWidth, kHeight, BacktestBody(data, why));
}

absl::StatusOr<BacktestData> HoldoutBacktest(const std::vector<Point>& points,
                                             std::vector<LogParams> starts) {
  // The one backtest computation (analysis/backtest.h), on one thread; this
  // adds the holdout's points for the figure.
  ASSIGN_OR_RETURN(const Grouping grouping, GroupByBudget(points, {}, 0));
  if (grouping.groups.size() < 2) {
    return absl::FailedPreconditionError(
        absl::StrCat(grouping.groups.size(), " budget(s): needs >= 2"));
  }
  Approach3Options options;
  options.threads = 1;
  options.starts = std::move(starts);
  absl::StatusOr<Backtest> b = LeaveLargestOut(points, grouping, options);
  if (!b.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the fit without it: ", b.status().message()));
  }
  return BacktestDataOf(points, grouping, *b);
}

BacktestData BacktestDataOf(const std::vector<Point>& points,
                            const Grouping& grouping, const Backtest& b) {
  std::vector<Point> test;
  for (int i : grouping.groups.back().indices) {
    test.push_back(points[static_cast<size_t>(i)]);
  }
  return BacktestData{.holdout_flops = b.holdout_flops,
                      .train_points = b.train_points,
                      .law = b.law,
                      .points = PredictAll(test, b.law),
                      .mean_abs_relative_error = b.mean_abs_relative_error};
}

absl::StatusOr<std::string> PlotSvg(const FitReport& r) {
  if (r.fit_points.empty()) {
    return absl::FailedPreconditionError("--plot: no points to draw");
  }
  const std::optional<Approach3Fit>& f3 = r.approach3.fit;
  const std::string no_law =
      f3 ? "" : absl::StrCat("no Approach-3 law: ", r.approach3.reason);
  // Profiles: each budget's points, its own parabola (Approach 2's when it
  // fitted the budget) and the law along the budget.
  std::vector<ProfileSeries> series;
  std::vector<Point> grouped;
  double c_lo = INFINITY, c_hi = 0;
  for (const BudgetGroup& g : r.grouping.groups) {
    ProfileSeries s{.flops = g.flops};
    double lo = INFINITY, hi = 0;
    std::vector<std::pair<double, double>> n_d;
    for (int i : g.indices) {
      const Point& p = r.fit_points[i];
      s.points.emplace_back(p.n, p.loss);
      n_d.emplace_back(p.n, p.d);
      lo = std::min(lo, p.n);
      hi = std::max(hi, p.n);
      Point q = p;
      q.budget = g.flops;
      grouped.push_back(q);
    }
    c_lo = std::min(c_lo, g.flops);
    c_hi = std::max(c_hi, g.flops);
    if (r.approach2.fit) {
      for (const IsoFlopProfile& prof : r.approach2.fit->budgets) {
        if (prof.flops == g.flops) {
          s.parabola = std::vector<double>{prof.c0, prof.c1, prof.c2};
        }
      }
    }
    if (f3 && lo <= hi) s.law = LawAlongBudget(*f3, n_d, lo / 2, hi * 2);
    series.push_back(std::move(s));
  }
  if (grouped.empty()) grouped = r.fit_points;
  for (const Point& p : grouped) {
    c_lo = std::min(c_lo, p.flops);
    c_hi = std::max(c_hi, p.flops);
  }
  double c_top = c_hi * 1000;
  for (double c : r.request.query_flops) c_top = std::max(c_top, c);
  // Frontier: from the smallest budget to 1000x the largest (or the largest
  // query).
  FrontierData frontier;
  frontier.largest_budget = c_hi;
  std::vector<Approach3Fit> samples;
  if (r.approach3.bootstrap) samples = r.approach3.bootstrap->samples;
  if (f3) {
    constexpr int kSteps = 48;
    for (int k = 0; k <= kSteps; ++k) {
      const double c = c_lo * std::pow(c_top / c_lo, double{1} * k / kSteps);
      const ComputeOptimum o = ComputeOptimalUnder(*f3, c, r.flops_model);
      frontier.flops.push_back(c);
      frontier.n_opt.push_back(o.n_opt);
      frontier.d_opt.push_back(o.d_opt);
      if (samples.empty()) continue;
      const auto ci = OptimumIntervals(samples, c, r.flops_model);
      frontier.n_low.push_back(ci.at("n_opt").low);
      frontier.n_high.push_back(ci.at("n_opt").high);
      frontier.d_low.push_back(ci.at("d_opt").low);
      frontier.d_high.push_back(ci.at("d_opt").high);
    }
    for (double c : r.request.query_flops) {
      frontier.marks.emplace_back(
          c, ComputeOptimalUnder(*f3, c, r.flops_model).n_opt);
    }
  }
  std::vector<double> grid = frontier.flops;
  if (grid.empty()) {
    for (int k = 0; k <= 48; ++k) {
      grid.push_back(c_lo * std::pow(c_top / c_lo, k / 48.0));
    }
  }
  if (r.approach2.fit) {
    for (const IsoFlopProfile& prof : r.approach2.fit->budgets) {
      frontier.a2_n_points.emplace_back(prof.flops, prof.n_opt);
      frontier.a2_d_points.emplace_back(prof.flops, prof.d_opt);
    }
    frontier.a2_n_law = {r.approach2.fit->n_opt.coef,
                         r.approach2.fit->n_opt.exponent};
    frontier.a2_d_law = {r.approach2.fit->d_opt.coef,
                         r.approach2.fit->d_opt.exponent};
  }
  if (const auto& f1 = r.approach1.fit) {
    Overlay o{.label = "N_opt, Approach 1 envelope",
              .color = "#2ca02c",
              .dash = "2 2"};
    for (double c : grid) o.xy.emplace_back(c, f1->n_opt(c));
    frontier.overlays.push_back(std::move(o));
  }
  for (Overlay& o : PublishedOverlays(grid)) {
    frontier.overlays.push_back(std::move(o));
  }
  const std::vector<FitPoint> fitted =
      f3 ? PredictAll(grouped, *f3) : std::vector<FitPoint>{};
  std::optional<BacktestData> backtest;
  std::string why;
  if (absl::StatusOr<BacktestData> b = HoldoutBacktest(grouped); b.ok()) {
    backtest = *std::move(b);
  } else {
    why = std::string(b.status().message());
  }
  // Layout: profiles | frontier; residuals (three panels); predicted vs
  // observed | backtest.
  constexpr double kW = 2 * kWidth, kH = 2 * kHeight + kResidualsHeight + 30;
  return absl::StrCat(
      Open(kW, kH), Translate(0, 0, ProfilesBody(series, no_law)),
      Translate(kWidth, 0, FrontierBody(frontier, no_law)),
      Translate(0, kHeight, ResidualsBody(fitted, no_law)),
      Translate(0, kHeight + kResidualsHeight, PredictedBody(fitted, no_law)),
      Translate(kWidth, kHeight + kResidualsHeight,
                BacktestBody(backtest, why)),
      absl::StrFormat(
          "<text x=\"20\" y=\"%g\" font-size=\"11\" fill=\"#555\">%d points; "
          "C as in the points; dashed in the profiles: the Approach-3 law "
          "along each budget</text>\n",
          kH - 10, static_cast<int>(r.fit_points.size())),
      "</svg>\n");
}

}  // namespace isoflop::analysis
