// Generation requests of `isoflop-trainer generate`: one JSON object per line,
// parsed and validated against the model before any tensor is touched. No
// LibTorch here (a fast translation unit, tested on its own).
//
//   {"id": "r1", "prompt_ids": [1, 2, 3], "max_new_tokens": 16,
//    "temperature": 0.8, "top_k": 50, "top_p": 0.95, "seed": 7,
//    "eos_id": 0}
//
// Only "id" and "prompt_ids" are required; the other fields default to the
// flags of `generate` (RequestDefaults). Unknown fields are refused, so a typo
// ("topk") is an error and not a silently ignored setting.
#ifndef ISOFLOP_TRAINER_REQUEST_H_
#define ISOFLOP_TRAINER_REQUEST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace isoflop::trainer {

struct SamplingParams {
  double temperature = 1.0;  // 0: greedy (argmax)
  int64_t top_k = 0;         // 0: off
  double top_p = 1.0;        // nucleus mass kept, in (0, 1]
  uint64_t seed = 0;         // of this request's own generator
};

struct GenerateRequest {
  std::string id;
  std::vector<int64_t> prompt_ids;
  int64_t max_new_tokens = 0;
  SamplingParams sampling;
  int64_t eos_id = -1;  // -1: none
};

// What the flags of `generate` give a request that leaves a field out.
struct RequestDefaults {
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  int64_t eos_id = -1;
};

// The model a request must fit.
struct RequestLimits {
  int64_t vocab_size = 0;
  int64_t context = 0;
};

inline constexpr size_t kMaxRequestIdBytes = 128;
inline constexpr double kMaxTemperature = 100;

// Checks every field of `r` against `limits`. INVALID_ARGUMENT naming the
// field, its value and the rule, e.g. "prompt_ids[2] = 70000: must be <
// vocab_size = 512". Rules: id 1..128 bytes; 1 <= len(prompt_ids) <= context
// - 1 (the sequence, prompt plus new tokens, never exceeds the context); 0 <=
// each id < vocab_size; 1 <= max_new_tokens <= context; 0 <= temperature <=
// 100; 0 <= top_k <= vocab_size; 0 < top_p <= 1; -1 <= eos_id < vocab_size.
absl::Status ValidateRequest(const GenerateRequest& r,
                             const RequestLimits& limits);

// Parses one JSON line into a request (fields left out take `defaults`; a
// default max_new_tokens above the context is clamped to it) and validates
// it. INVALID_ARGUMENT for malformed JSON, a field of the wrong
// type, an unknown field, or a value ValidateRequest refuses.
absl::StatusOr<GenerateRequest> ParseRequest(absl::string_view line,
                                             const RequestDefaults& defaults,
                                             const RequestLimits& limits);

// The "id" of a JSON line if it is an object with a string id, else "": what
// an error line reports for a request that did not parse.
std::string RequestIdOf(absl::string_view line);

// `s` as a JSON string literal, quotes included.
std::string JsonQuote(absl::string_view s);

// "1,2,3" -> {1, 2, 3}. INVALID_ARGUMENT naming `flag` for an empty list or
// an item that is not an integer.
absl::StatusOr<std::vector<int64_t>> ParseIdList(absl::string_view text,
                                                 absl::string_view flag);

}  // namespace isoflop::trainer

#endif  // ISOFLOP_TRAINER_REQUEST_H_
