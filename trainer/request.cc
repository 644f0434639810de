#include "trainer/request.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace isoflop::trainer {
namespace {

// The JSON the request format needs (the trainer links no JSON library: it
// also builds on GPU hosts that have LibTorch, abseil and CLI11 only).
struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  std::string text;  // kString: the value; kNumber: the literal
  std::vector<Json> items;
  std::map<std::string, Json> fields;
};

class JsonParser {
 public:
  explicit JsonParser(absl::string_view s) : s_(s) {}

  absl::StatusOr<Json> ParseDocument() {
    ASSIGN_OR_RETURN(Json v, Value(0));
    SkipSpace();
    if (pos_ != s_.size()) return Error("unexpected text after the value");
    return v;
  }

 private:
  static constexpr int kMaxDepth = 8;

  absl::Status Error(absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("request is not valid JSON: ", what, " at byte ", pos_));
  }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' ||
                                s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }
  bool Eat(char c) {
    SkipSpace();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool EatWord(absl::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    pos_ += w.size();
    return true;
  }

  absl::StatusOr<Json> Value(int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    SkipSpace();
    if (pos_ >= s_.size()) return Error("unexpected end");
    Json v;
    const char c = s_[pos_];
    if (c == '{') {
      ++pos_;
      v.kind = Json::Kind::kObject;
      if (Eat('}')) return v;
      do {
        SkipSpace();
        ASSIGN_OR_RETURN(std::string key, String());
        if (!Eat(':')) return Error("expected ':'");
        ASSIGN_OR_RETURN(Json item, Value(depth + 1));
        if (!v.fields.emplace(key, std::move(item)).second)
          return Error(absl::StrCat("duplicate field ", JsonQuote(key)));
      } while (Eat(','));
      if (!Eat('}')) return Error("expected ',' or '}'");
    } else if (c == '[') {
      ++pos_;
      v.kind = Json::Kind::kArray;
      if (Eat(']')) return v;
      do {
        ASSIGN_OR_RETURN(Json item, Value(depth + 1));
        v.items.push_back(std::move(item));
      } while (Eat(','));
      if (!Eat(']')) return Error("expected ',' or ']'");
    } else if (c == '"') {
      v.kind = Json::Kind::kString;
      ASSIGN_OR_RETURN(v.text, String());
    } else if (EatWord("true") || EatWord("false")) {
      v.kind = Json::Kind::kBool;
      v.boolean = c == 't';
    } else if (EatWord("null")) {
      v.kind = Json::Kind::kNull;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      const size_t start = pos_;
      while (pos_ < s_.size() &&
             absl::string_view("+-.eE0123456789").find(s_[pos_]) !=
                 absl::string_view::npos)
        ++pos_;
      v.kind = Json::Kind::kNumber;
      v.text = std::string(s_.substr(start, pos_ - start));
      double unused;
      if (!absl::SimpleAtod(v.text, &unused)) return Error("bad number");
    } else {
      return Error(
          absl::StrCat("unexpected character '", s_.substr(pos_, 1), "'"));
    }
    return v;
  }

  // A string literal at pos_ (after optional space). \uXXXX escapes are kept
  // only for ASCII; ids are compared as bytes.
  absl::StatusOr<std::string> String() {
    if (pos_ >= s_.size() || s_[pos_] != '"') return Error("expected a string");
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != '"') {
      char c = s_[pos_++];
      if (static_cast<unsigned char>(c) < 0x20)
        return Error("control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size()) break;
      c = s_[pos_++];
      switch (c) {
        case '"':
        case '\\':
        case '/':
          out += c;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          const std::string hex(s_.substr(pos_, 4));
          char* end = nullptr;
          const uint64_t code = std::strtoull(hex.c_str(), &end, 16);
          if (hex.size() != 4 || end != hex.c_str() + 4 || code >= 0x80)
            return Error("only ASCII \\u escapes are supported");
          out += static_cast<char>(code);
          pos_ += 4;
          break;
        }
        default:
          return Error("bad escape");
      }
    }
    if (pos_ >= s_.size()) return Error("unterminated string");
    ++pos_;
    return out;
  }

  absl::string_view s_;
  size_t pos_ = 0;
};

const char* KindName(Json::Kind k) {
  switch (k) {
    case Json::Kind::kNull:
      return "null";
    case Json::Kind::kBool:
      return "a boolean";
    case Json::Kind::kNumber:
      return "a number";
    case Json::Kind::kString:
      return "a string";
    case Json::Kind::kArray:
      return "an array";
    case Json::Kind::kObject:
      return "an object";
  }
  return "?";
}

std::string Shown(const Json& v) {
  switch (v.kind) {
    case Json::Kind::kNumber:
      return v.text;
    case Json::Kind::kString:
      return JsonQuote(v.text);
    default:
      return KindName(v.kind);
  }
}

absl::StatusOr<int64_t> Int(const Json& v, absl::string_view field) {
  int64_t out = 0;
  if (v.kind != Json::Kind::kNumber || !absl::SimpleAtoi(v.text, &out)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " = ", Shown(v), ": must be an integer"));
  }
  return out;
}

absl::StatusOr<double> Number(const Json& v, absl::string_view field) {
  double out = 0;
  if (v.kind != Json::Kind::kNumber || !absl::SimpleAtod(v.text, &out) ||
      !std::isfinite(out)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " = ", Shown(v), ": must be a finite number"));
  }
  return out;
}

absl::Status Range(absl::string_view field, double value, bool ok,
                   absl::string_view rule) {
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " = ", value, ": must be ", rule));
}

}  // namespace

absl::Status ValidateRequest(const GenerateRequest& r,
                             const RequestLimits& limits) {
  if (r.id.empty() || r.id.size() > kMaxRequestIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("id = ", JsonQuote(r.id), ": must be 1 to ",
                     kMaxRequestIdBytes, " bytes"));
  }
  const auto n = static_cast<int64_t>(r.prompt_ids.size());
  if (n < 1 || n > limits.context - 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt_ids: ", n, " tokens: must be 1 to context - 1 = ",
        limits.context - 1, " (prompt plus new tokens fit the context)"));
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = r.prompt_ids[i];
    if (id < 0 || id >= limits.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prompt_ids[", i, "] = ", id,
          ": must be >= 0 and < vocab_size = ", limits.vocab_size));
    }
  }
  if (r.max_new_tokens < 1 || r.max_new_tokens > limits.context) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_new_tokens = ", r.max_new_tokens,
                     ": must be >= 1 and <= context = ", limits.context));
  }
  const SamplingParams& p = r.sampling;
  RETURN_IF_ERROR(
      Range("temperature", p.temperature,
            p.temperature >= 0 && p.temperature <= kMaxTemperature,
            absl::StrCat(">= 0 (0: greedy) and <= ", kMaxTemperature)));
  if (p.top_k < 0 || p.top_k > limits.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "top_k = ", p.top_k,
        ": must be >= 0 (0: off) and <= ", "vocab_size = ", limits.vocab_size));
  }
  RETURN_IF_ERROR(
      Range("top_p", p.top_p, p.top_p > 0 && p.top_p <= 1, "in (0, 1]"));
  if (r.eos_id < -1 || r.eos_id >= limits.vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("eos_id = ", r.eos_id, ": must be -1 (none) or < ",
                     "vocab_size = ", limits.vocab_size));
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerateRequest> ParseRequest(absl::string_view line,
                                             const RequestDefaults& defaults,
                                             const RequestLimits& limits) {
  ASSIGN_OR_RETURN(const Json doc, JsonParser(line).ParseDocument());
  if (doc.kind != Json::Kind::kObject) {
    return absl::InvalidArgumentError(absl::StrCat(
        "request = ", KindName(doc.kind), ": must be a JSON object"));
  }
  GenerateRequest r;
  // A default above the context could never be produced: clamp it (a value
  // given in the request is validated instead).
  r.max_new_tokens = std::min(defaults.max_new_tokens, limits.context);
  r.sampling = defaults.sampling;
  r.eos_id = defaults.eos_id;
  bool has_id = false, has_prompt = false;
  for (const auto& [key, v] : doc.fields) {
    if (key == "id") {
      if (v.kind != Json::Kind::kString) {
        return absl::InvalidArgumentError(
            absl::StrCat("id = ", Shown(v), ": must be a string"));
      }
      r.id = v.text;
      has_id = true;
    } else if (key == "prompt_ids") {
      if (v.kind != Json::Kind::kArray) {
        return absl::InvalidArgumentError(absl::StrCat(
            "prompt_ids = ", Shown(v), ": must be an array of token ids"));
      }
      for (size_t i = 0; i < v.items.size(); ++i) {
        ASSIGN_OR_RETURN(const int64_t id,
                         Int(v.items[i], absl::StrCat("prompt_ids[", i, "]")));
        r.prompt_ids.push_back(id);
      }
      has_prompt = true;
    } else if (key == "max_new_tokens") {
      ASSIGN_OR_RETURN(r.max_new_tokens, Int(v, key));
    } else if (key == "temperature") {
      ASSIGN_OR_RETURN(r.sampling.temperature, Number(v, key));
    } else if (key == "top_k") {
      ASSIGN_OR_RETURN(r.sampling.top_k, Int(v, key));
    } else if (key == "top_p") {
      ASSIGN_OR_RETURN(r.sampling.top_p, Number(v, key));
    } else if (key == "seed") {
      uint64_t seed = 0;
      if (v.kind != Json::Kind::kNumber || !absl::SimpleAtoi(v.text, &seed)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "seed = ", Shown(v), ": must be an integer in [0, 2^64)"));
      }
      r.sampling.seed = seed;
    } else if (key == "eos_id") {
      ASSIGN_OR_RETURN(r.eos_id, Int(v, key));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "field ", JsonQuote(key),
          ": unknown (known: id, prompt_ids, max_new_tokens, temperature, "
          "top_k, top_p, seed, eos_id)"));
    }
  }
  if (!has_id) return absl::InvalidArgumentError("id: required");
  if (!has_prompt) return absl::InvalidArgumentError("prompt_ids: required");
  RETURN_IF_ERROR(ValidateRequest(r, limits));
  return r;
}

std::string RequestIdOf(absl::string_view line) {
  absl::StatusOr<Json> doc = JsonParser(line).ParseDocument();
  if (!doc.ok() || doc->kind != Json::Kind::kObject) return "";
  auto it = doc->fields.find("id");
  if (it == doc->fields.end() || it->second.kind != Json::Kind::kString)
    return "";
  return it->second.text;
}

std::string JsonQuote(absl::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

absl::StatusOr<std::vector<int64_t>> ParseIdList(absl::string_view text,
                                                 absl::string_view flag) {
  std::vector<int64_t> out;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(item), &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, " = ", text, ": item \"", item,
                       "\" is not an integer (expected e.g. 1,2,3)"));
    }
    out.push_back(v);
  }
  if (out.empty())
    return absl::InvalidArgumentError(absl::StrCat(flag, ": empty list"));
  return out;
}

}  // namespace isoflop::trainer
