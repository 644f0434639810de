#include "analysis/plot_svg.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace isoflop::analysis {
namespace {

constexpr int kWidth = 1120, kHeight = 480;

// One panel: data coordinates (log10 where `log_x` / `log_y`) to pixels.
struct Panel {
  double left, top, width, height;
  double x0, x1, y0, y1;  // data range (log10 for log axes)
  bool log_x, log_y;
  double X(double x) const {
    const double v = log_x ? std::log10(x) : x;
    return left + (v - x0) / (x1 - x0) * width;
  }
  double Y(double y) const {
    const double v = log_y ? std::log10(y) : y;
    return top + height - (v - y0) / (y1 - y0) * height;
  }
  bool Inside(double x, double y) const {
    const double px = X(x), py = Y(y);
    return std::isfinite(px) && std::isfinite(py) && px >= left - 1 &&
           px <= left + width + 1 && py >= top - 1 && py <= top + height + 1;
  }
};

// A budget's colour on a blue-to-red ramp.
std::string Colour(int i, int n) {
  const double t = n <= 1 ? 0 : static_cast<double>(i) / (n - 1);
  return absl::StrFormat("rgb(%d,%d,%d)", static_cast<int>(40 + 200 * t),
                         static_cast<int>(90 + 40 * (1 - std::abs(2 * t - 1))),
                         static_cast<int>(220 - 190 * t));
}

// A polyline of the points inside the panel, split where they leave it.
std::string Path(const Panel& p,
                 const std::vector<std::pair<double, double>>& xy,
                 const std::string& style) {
  std::string d;
  bool pen = false;
  for (const auto& [x, y] : xy) {
    if (!p.Inside(x, y)) {
      pen = false;
      continue;
    }
    absl::StrAppend(&d, pen ? " L" : " M",
                    absl::StrFormat("%.1f,%.1f", p.X(x), p.Y(y)));
    pen = true;
  }
  return d.empty() ? "" : absl::StrCat("<path d=\"", d, "\" ", style, "/>\n");
}

std::string Axes(const Panel& p, const std::string& title,
                 const std::string& x_label, const std::string& y_label) {
  std::string out = absl::StrFormat(
      "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" "
      "fill=\"none\" stroke=\"#333\"/>\n"
      "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\" font-size=\"15\">%s"
      "</text>\n<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n"
      "<text transform=\"translate(%.0f,%.0f) rotate(-90)\" "
      "text-anchor=\"middle\">%s</text>\n",
      p.left, p.top, p.width, p.height, p.left + p.width / 2, p.top - 10, title,
      p.left + p.width / 2, p.top + p.height + 38, x_label, p.left - 48,
      p.top + p.height / 2, y_label);
  // Decade ticks on log axes, five ticks on a linear one.
  auto ticks = [](double lo, double hi, bool log) {
    std::vector<double> t;
    if (log) {
      for (double e = std::ceil(lo); e <= hi; ++e) t.push_back(e);
    } else {
      for (int k = 0; k <= 4; ++k) t.push_back(lo + (hi - lo) * k / 4);
    }
    return t;
  };
  for (double t : ticks(p.x0, p.x1, p.log_x)) {
    const double px = p.left + (t - p.x0) / (p.x1 - p.x0) * p.width;
    absl::StrAppend(
        &out, absl::StrFormat(
                  "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" "
                  "stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\" "
                  "font-size=\"11\">"
                  "%s</text>\n",
                  px, p.top, px, p.top + p.height, px, p.top + p.height + 16,
                  p.log_x ? absl::StrFormat("1e%d", static_cast<int>(t))
                          : absl::StrFormat("%.3g", t)));
  }
  for (double t : ticks(p.y0, p.y1, p.log_y)) {
    const double py = p.top + p.height - (t - p.y0) / (p.y1 - p.y0) * p.height;
    absl::StrAppend(
        &out,
        absl::StrFormat("<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" "
                        "stroke=\"#ddd\"/>"
                        "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\" "
                        "font-size=\"11\">%s"
                        "</text>\n",
                        p.left, py, p.left + p.width, py, p.left - 5, py + 4,
                        p.log_y ? absl::StrFormat("1e%d", static_cast<int>(t))
                                : absl::StrFormat("%.3g", t)));
  }
  return out;
}

std::vector<double> LogSpace(double lo, double hi, int n) {
  std::vector<double> v;
  for (int k = 0; k < n; ++k) {
    v.push_back(std::pow(
        10, std::log10(lo) + (std::log10(hi) - std::log10(lo)) * k / (n - 1)));
  }
  return v;
}

std::string ProfilesPanel(const FitReport& r, const Panel& p) {
  std::string out =
      Axes(p, "IsoFLOP profiles", "parameters N", "loss (nats/token)");
  const auto& groups = r.grouping.groups;
  const int n = static_cast<int>(groups.size());
  for (int g = 0; g < n; ++g) {
    const std::string colour = Colour(g, n);
    double lo = INFINITY, hi = 0;
    for (int i : groups[g].indices) {
      const Point& pt = r.fit_points[i];
      lo = std::min(lo, pt.n);
      hi = std::max(hi, pt.n);
      if (p.Inside(pt.n, pt.loss)) {
        absl::StrAppend(
            &out,
            absl::StrFormat(
                "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n",
                p.X(pt.n), p.Y(pt.loss), colour));
      }
    }
    if (r.approach3.fit) {
      std::vector<std::pair<double, double>> law;
      for (double nn : LogSpace(lo / 2, hi * 2, 80)) {
        const Approach3Fit& f = *r.approach3.fit;
        const double d = TokensForCompute(r.flops_model, nn, groups[g].flops);
        law.emplace_back(
            nn, f.e + f.a / std::pow(nn, f.alpha) + f.b / std::pow(d, f.beta));
      }
      absl::StrAppend(
          &out, Path(p, law,
                     absl::StrCat(
                         "fill=\"none\" stroke=\"", colour,
                         "\" stroke-dasharray=\"5,4\" stroke-width=\"1.2\"")));
    }
    if (!r.approach2.fit) continue;
    for (const IsoFlopProfile& prof : r.approach2.fit->budgets) {
      if (prof.flops != groups[g].flops) continue;
      std::vector<std::pair<double, double>> curve;
      for (double nn : LogSpace(lo / 1.5, hi * 1.5, 80)) {
        const double x = std::log(nn);
        curve.emplace_back(nn, prof.c0 + prof.c1 * x + prof.c2 * x * x);
      }
      absl::StrAppend(&out, Path(p, curve,
                                 absl::StrCat("fill=\"none\" stroke=\"", colour,
                                              "\" stroke-width=\"2\"")));
      if (p.Inside(prof.n_opt, prof.loss_min)) {
        absl::StrAppend(
            &out,
            absl::StrFormat(
                "<path d=\"M%.1f,%.1f l6,6 l-6,6 l-6,-6 z\" fill=\"white\" "
                "stroke=\"%s\" stroke-width=\"2\"/>\n",
                p.X(prof.n_opt), p.Y(prof.loss_min) - 6, colour));
      }
    }
    absl::StrAppend(
        &out, absl::StrFormat("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" "
                              "fill=\"%s\">C = %.2g</text>\n",
                              p.left + p.width - 70, p.top + 16 + 14 * g,
                              colour, groups[g].flops));
  }
  return out;
}

std::string FrontierPanel(const FitReport& r, const Panel& p,
                          const std::vector<double>& c_range) {
  std::string out =
      Axes(p, "Compute-optimal frontier", "compute C (FLOPs)", "parameters N");
  if (const auto& f3 = r.approach3.fit) {
    // Iso-loss contours: for each N, the D (and so C) where L(N, D) = level.
    const ComputeOptimum mid = ComputeOptimalUnder(
        *f3, std::sqrt(c_range.front() * c_range.back()), r.flops_model);
    for (double scale : {1.02, 1.05, 1.1, 1.2, 1.4}) {
      const double level = f3->e + (mid.loss - f3->e) * scale;
      std::vector<std::pair<double, double>> contour;
      for (double nn : LogSpace(std::pow(10, p.y0), std::pow(10, p.y1), 200)) {
        const double rest = level - f3->e - f3->a / std::pow(nn, f3->alpha);
        if (rest <= 0) continue;
        const double d = std::pow(f3->b / rest, 1 / f3->beta);
        contour.emplace_back(ComputeFromParamsTokens(r.flops_model, nn, d), nn);
      }
      absl::StrAppend(
          &out, Path(p, contour,
                     "fill=\"none\" stroke=\"#aaa\" stroke-width=\"0.8\""));
    }
    const auto cs = LogSpace(c_range.front(), c_range.back(), 60);
    if (const auto& boot = r.approach3.bootstrap;
        boot && !boot->samples.empty()) {
      std::string upper, lower;
      for (double c : cs) {
        const auto ci =
            OptimumIntervals(boot->samples, c, r.flops_model).at("n_opt");
        if (!p.Inside(c, ci.low) || !p.Inside(c, ci.high)) continue;
        absl::StrAppend(&upper, upper.empty() ? "M" : " L",
                        absl::StrFormat("%.1f,%.1f", p.X(c), p.Y(ci.high)));
        lower = absl::StrCat(
            absl::StrFormat(" L%.1f,%.1f", p.X(c), p.Y(ci.low)), lower);
      }
      if (!upper.empty()) {
        absl::StrAppend(
            &out, "<path d=\"", upper, lower,
            " Z\" fill=\"#1f77b4\" fill-opacity=\"0.2\" stroke=\"none\"/>\n");
      }
    }
    std::vector<std::pair<double, double>> frontier;
    for (double c : cs)
      frontier.emplace_back(c,
                            ComputeOptimalUnder(*f3, c, r.flops_model).n_opt);
    absl::StrAppend(
        &out, Path(p, frontier,
                   "fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2.5\""));
  }
  if (const auto& f2 = r.approach2.fit) {
    std::vector<std::pair<double, double>> law;
    for (double c : LogSpace(c_range.front(), c_range.back(), 40))
      law.emplace_back(c, f2->n_opt(c));
    absl::StrAppend(&out,
                    Path(p, law,
                         "fill=\"none\" stroke=\"#d62728\" "
                         "stroke-dasharray=\"6,4\" stroke-width=\"1.5\""));
    for (const IsoFlopProfile& prof : f2->budgets) {
      if (!p.Inside(prof.flops, prof.n_opt)) continue;
      absl::StrAppend(
          &out,
          absl::StrFormat(
              "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"#d62728\"/>\n",
              p.X(prof.flops), p.Y(prof.n_opt)));
    }
  }
  if (const auto& f1 = r.approach1.fit) {
    std::vector<std::pair<double, double>> law;
    for (double c : LogSpace(c_range.front(), c_range.back(), 40))
      law.emplace_back(c, f1->n_opt(c));
    absl::StrAppend(&out,
                    Path(p, law,
                         "fill=\"none\" stroke=\"#2ca02c\" "
                         "stroke-dasharray=\"2,3\" stroke-width=\"1.5\""));
  }
  const char* legend[][2] = {{"#1f77b4", "Approach 3 N_opt(C), 95% band"},
                             {"#d62728", "Approach 2 vertices and power law"},
                             {"#2ca02c", "Approach 1 envelope law"},
                             {"#aaa", "Approach 3 iso-loss contours"}};
  for (int k = 0; k < 4; ++k) {
    absl::StrAppend(
        &out, absl::StrFormat("<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" "
                              "y2=\"%.0f\" stroke=\"%s\" "
                              "stroke-width=\"2\"/><text x=\"%.0f\" y=\"%.0f\" "
                              "font-size=\"11\">%s</text>\n",
                              p.left + 10, p.top + 14 + 15 * k, p.left + 30,
                              p.top + 14 + 15 * k, legend[k][0], p.left + 36,
                              p.top + 18 + 15 * k, legend[k][1]));
  }
  return out;
}

}  // namespace

absl::StatusOr<std::string> PlotSvg(const FitReport& r) {
  if (!r.approach2.fit && !r.approach3.fit) {
    return absl::FailedPreconditionError(
        "--plot: needs an Approach 2 or 3 fit to draw");
  }
  double n_lo = INFINITY, n_hi = 0, l_lo = INFINITY, l_hi = 0, c_lo = INFINITY,
         c_hi = 0;
  for (const BudgetGroup& g : r.grouping.groups) {
    for (int i : g.indices) {
      const Point& pt = r.fit_points[i];
      n_lo = std::min(n_lo, pt.n);
      n_hi = std::max(n_hi, pt.n);
      l_lo = std::min(l_lo, pt.loss);
      l_hi = std::max(l_hi, pt.loss);
    }
  }
  for (const Point& pt : r.fit_points) {
    c_lo = std::min(c_lo, pt.flops);
    c_hi = std::max(c_hi, pt.flops);
  }
  for (double c : r.request.query_flops) c_hi = std::max(c_hi, c);
  if (!(n_lo < n_hi)) n_lo /= 10, n_hi *= 10;
  const double pad = 0.05 * std::max(l_hi - l_lo, 1e-3);
  const Panel left{70,
                   40,
                   440,
                   370,
                   std::log10(n_lo) - 0.1,
                   std::log10(n_hi) + 0.1,
                   l_lo - pad,
                   l_hi + pad,
                   true,
                   false};
  const double c0 = c_lo / 3, c1 = c_hi * 30;
  double f_lo = n_lo, f_hi = n_hi;
  auto widen = [&](double n) {
    if (std::isfinite(n) && n > 0)
      f_lo = std::min(f_lo, n), f_hi = std::max(f_hi, n);
  };
  if (r.approach3.fit) {
    widen(ComputeOptimalUnder(*r.approach3.fit, c0, r.flops_model).n_opt);
    widen(ComputeOptimalUnder(*r.approach3.fit, c1, r.flops_model).n_opt);
  }
  if (r.approach2.fit) {
    widen(r.approach2.fit->n_opt(c0));
    widen(r.approach2.fit->n_opt(c1));
  }
  const Panel right{640,
                    40,
                    440,
                    370,
                    std::log10(c0),
                    std::log10(c1),
                    std::log10(f_lo) - 0.3,
                    std::log10(f_hi) + 0.3,
                    true,
                    true};
  return absl::StrCat(
      absl::StrFormat(
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
          "height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"Helvetica, "
          "Arial, sans-serif\" font-size=\"13\">\n<rect width=\"100%%\" "
          "height=\"100%%\" fill=\"white\"/>\n",
          kWidth, kHeight, kWidth, kHeight),
      ProfilesPanel(r, left), FrontierPanel(r, right, {c0, c1}),
      absl::StrFormat("<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">"
                      "%d points; C: %s; dashed (left): Approach 3 law "
                      "along each budget; diamonds: parabola vertices</text>\n",
                      70, kHeight - 12, static_cast<int>(r.fit_points.size()),
                      r.flops_model.is_6nd() ? "6ND" : "exact FLOPs/token"),
      "</svg>\n");
}

}  // namespace isoflop::analysis
