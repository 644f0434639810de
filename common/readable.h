// Numbers people read (docs/fitting.md, "Reading the output"): a few
// significant figures, counts with K/M/B/T, intervals of scale parameters as
// ×/÷ factors, and no interval at all where it has zero width.
#ifndef ISOFLOP_COMMON_READABLE_H_
#define ISOFLOP_COMMON_READABLE_H_

#include <string>

namespace isoflop {

// `v` to `digits` significant figures ("0.347", "2.14e+03"); "inf", "-inf",
// "nan" for non-finite values. digits <= 0: full precision (the shortest
// text that reads back as exactly `v`).
std::string Sig(double v, int digits = 3);

// A whole count (parameters, tokens) with a K/M/B/T suffix: 6795600349 ->
// "6.8B", 875 -> "875", 1.4e12 -> "1.4T"; `digits` significant figures,
// trailing zeros dropped. Beyond 1000T, and for non-finite or negative
// values, Sig. digits <= 0: the whole number ("6795600349").
std::string Count(double v, int digits = 3);

// " (95% a .. b)" for a parameter read on a linear scale (alpha, beta, E, an
// exponent), or " (95%: no width: <why>)" when low == high: a zero-width
// interval says the points pin the value, never that it is known.
std::string LinearInterval(double low, double high, int digits = 3);

// " (95% ×/÷ f)" for a scale parameter (A, B, N_opt, D_opt) estimated as
// `v`: f = max(high / v, v / low), so the interval is [v / f, v × f] or
// inside it. " (95% low <= 0 .. b)" when the interval reaches 0 or below
// (not a factor), and the zero-width note as LinearInterval.
std::string FactorInterval(double v, double low, double high, int digits = 3);

}  // namespace isoflop

#endif  // ISOFLOP_COMMON_READABLE_H_
