// A verdict on every fit: can its law be trusted? `ok`, `weak` (usable with
// care: the reasons say what to add to the sweep) or `unidentified` (the
// points do not determine the law: no answer should be read from it). The
// checks and their thresholds are listed in docs/fitting.md ("Verdicts").
#ifndef ISOFLOP_ANALYSIS_VERDICT_H_
#define ISOFLOP_ANALYSIS_VERDICT_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/fit_report.h"
#include "nlohmann/json.hpp"

namespace isoflop::analysis {

enum class VerdictLevel { kOk = 0, kWeak = 1, kUnidentified = 2 };

struct Verdict {
  VerdictLevel level = VerdictLevel::kOk;
  // One sentence each: what is wrong, in numbers, then what to do; those
  // that make the fit unidentified first.
  std::vector<std::string> reasons;
  std::vector<VerdictLevel> reason_levels;  // the level each reason gives
};

// The thresholds (docs/fitting.md, "Verdicts").
inline constexpr int kApproach3Parameters = 5;  // E, A, B, alpha, beta
inline constexpr int kWeakBelowPoints = 10;     // 2 points per parameter
inline constexpr int kWeakBelowBudgets = 3;     // IsoFLOP profiles
inline constexpr double kWeakBelowNRange = 3;   // max N / min N per budget
inline constexpr double kWeakAboveFailedShare = 0.1;   // bootstrap refits
inline constexpr double kWeakAboveExponentFactor = 2;  // alpha, beta high/low
inline constexpr double kWeakAboveA2ExponentWidth = 0.2;  // Approach 2's a
// Without bootstrap intervals, Approach 2 and 3 disagree when their N_opt
// exponents differ by more than this.
inline constexpr double kDisagreeWithoutIntervals = 0.1;
// Points trained for more epochs of their unique tokens than this make the
// plain law's fits weak (Muennighoff et al. 2023: up to ~4 epochs repeated
// data is about as good as unique; analysis/constrained.h).
inline constexpr double kWeakAboveEpochs = 4;
// Approach 3's Hessian condition number (approach3.h's ill_conditioned):
// weak above it, unidentified with fewer than kWeakBelowPoints points.
inline constexpr double kIllConditionedAbove = 1e12;

// "ok", "weak", "unidentified".
std::string LevelName(VerdictLevel level);
// The inverse of LevelName; nullopt for any other text.
std::optional<VerdictLevel> LevelFromName(std::string_view name);

// Raises `verdict` to at least `level` and adds `reason` (once), after the
// reasons of its level or a worse one and before the others.
void AddReason(Verdict* verdict, VerdictLevel level, std::string reason);
// The worse level of the two and the reasons of both (each once, in order).
Verdict Worse(const Verdict& a, const Verdict& b);

struct FitVerdicts {
  Verdict overall;  // the worst of the approaches', plus their disagreement
  std::optional<Verdict> approach1, approach2, approach3;  // when fitted
};

// Judges every fitted approach of `report` (the points' budgets, N ranges
// and minima, parameter counts, finiteness, conditioning, bootstrap failure
// rate and interval widths) and their agreement.
FitVerdicts JudgeFit(const FitReport& report);

// "k points train for > 4 epochs of their unique data (up to x); the
// Chinchilla form ignores repetition: fit --form muennighoff", or nullopt
// when no point's epochs exceed kWeakAboveEpochs. JudgeFit adds it (weak) to
// every fitted approach's verdict.
std::optional<std::string> RepetitionReason(const std::vector<Point>& points);

// {"level": "weak", "reasons": ["...", ...]}.
nlohmann::json VerdictToJson(const Verdict& verdict);
// The inverse; a missing or unknown level reads as unidentified (a fit file
// that does not say cannot be trusted more than one that says the worst).
Verdict VerdictFromJson(const nlohmann::json& json);

// "verdict: weak\n  - reason\n  - reason\n" (`indent` before each line).
std::string VerdictText(const Verdict& verdict, const std::string& indent = "");

}  // namespace isoflop::analysis

#endif  // ISOFLOP_ANALYSIS_VERDICT_H_
