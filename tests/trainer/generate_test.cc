#include "trainer/generate.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/checkpoint.h"
#include "trainer/model.h"
#include "trainer/model_file.h"
#include "trainer/request.h"

namespace isoflop::trainer {
namespace {

using ::testing::HasSubstr;

constexpr ModelDims kDims{97, 80, 32, 2, 4, 64};

// A random fp32 CPU model; parameters no longer require grad (as loaded).
std::unique_ptr<Gpt> RandomModel(int64_t mup_base_width = 0,
                                 uint64_t seed = 1) {
  torch::manual_seed(seed);
  auto model = std::make_unique<Gpt>(kDims, at::kCPU, mup_base_width);
  for (const at::Tensor& p : model->params()) p.set_requires_grad(false);
  return model;
}

struct Recorded {
  std::map<std::string, std::vector<int64_t>> tokens;
  std::map<std::string, std::string> reason, error;
  std::vector<std::string> order;  // ids of token events, in order
};

class RecordingSink : public GenerateSink {
 public:
  void Token(const std::string& id, int64_t i, int64_t token) override {
    EXPECT_EQ(i, static_cast<int64_t>(r.tokens[id].size())) << id;
    r.tokens[id].push_back(token);
    r.order.push_back(id);
  }
  void Done(const std::string& id, int64_t n, double ttft_ms,
            const std::string& reason) override {
    EXPECT_EQ(n, static_cast<int64_t>(r.tokens[id].size())) << id;
    EXPECT_GE(ttft_ms, 0);
    r.reason[id] = reason;
  }
  void Error(const std::string& id, const std::string& message) override {
    r.error[id] = message;
  }
  Recorded r;
};

std::string Line(const std::string& id, const std::vector<int64_t>& prompt,
                 int64_t max_new, const std::string& extra = "") {
  return absl::StrCat(R"({"id":")", id, R"(","prompt_ids":[)",
                      absl::StrJoin(prompt, ","), R"(],"max_new_tokens":)",
                      max_new, extra, "}");
}

Recorded Serve(const Gpt& model, int64_t max_batch,
               std::vector<std::string> lines, ServeStats* stats = nullptr) {
  RequestDefaults defaults;
  defaults.sampling.temperature = 0;
  Generator gen(model, max_batch, /*cuda_graph=*/false, defaults);
  VectorRequestSource source(std::move(lines));
  RecordingSink sink;
  absl::StatusOr<ServeStats> s = gen.Serve(source, sink);
  EXPECT_TRUE(s.ok()) << s.status();
  if (stats != nullptr && s.ok()) *stats = *s;
  return sink.r;
}

// Greedy continuation by recomputing the whole sequence at every step.
std::vector<int64_t> FullRecomputeGreedy(const Gpt& model,
                                         std::vector<int64_t> seq,
                                         int64_t new_tokens) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> out;
  for (int64_t k = 0; k < new_tokens; ++k) {
    at::Tensor x = at::tensor(seq, at::kLong).view({1, -1});
    const int64_t next = model.Logits(x)[0][-1].argmax().item<int64_t>();
    out.push_back(next);
    seq.push_back(next);
  }
  return out;
}

TEST(Generate, GreedyWithTheKvCacheEqualsFullRecomputeFor64Tokens) {
  for (const int64_t mup : {0, 16}) {
    auto model = RandomModel(mup);
    const std::vector<int64_t> prompt = {5, 17, 42, 3, 96, 0, 64, 8};
    const std::vector<int64_t> expected =
        FullRecomputeGreedy(*model, prompt, 64);
    Recorded r = Serve(*model, 1, {Line("a", prompt, 64)});
    EXPECT_EQ(r.tokens["a"], expected) << "mup_base_width " << mup;
    EXPECT_EQ(r.reason["a"], "length");
    // Not a degenerate fixed point: the reference moves.
    EXPECT_GT(std::set<int64_t>(expected.begin(), expected.end()).size(), 3u);
  }
}

TEST(Generate, StopsWhenTheSequenceFillsTheContext) {
  auto model = RandomModel();
  std::vector<int64_t> prompt(kDims.context - 3, 7);
  Recorded r = Serve(*model, 1, {Line("a", prompt, 10)});
  EXPECT_EQ(r.tokens["a"].size(), 3u);
  EXPECT_EQ(r.reason["a"], "context");
  EXPECT_EQ(r.tokens["a"], FullRecomputeGreedy(*model, prompt, 3));
}

TEST(Generate, ContinuousBatchingGivesEachRequestItsTokensAlone) {
  auto model = RandomModel();
  const std::vector<std::string> lines = {
      Line("a", {1, 2, 3}, 20),
      Line("b", {50}, 5),
      Line("c", {9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, 30),
      Line("d", {80, 81}, 12, R"(,"temperature":0.9,"top_k":20,"seed":4)"),
      Line("e", {4, 4}, 7, R"(,"temperature":1.3,"top_p":0.8,"seed":9)"),
      Line("f", {60, 61, 62}, 16)};
  ServeStats batched_stats;
  Recorded batched = Serve(*model, 3, lines, &batched_stats);
  int64_t alone_steps = 0;
  for (const std::string& line : lines) {
    ServeStats stats;
    Recorded alone = Serve(*model, 1, {line}, &stats);
    alone_steps += stats.decode_steps;
    ASSERT_EQ(alone.tokens.size(), 1u);
    const auto& [id, tokens] = *alone.tokens.begin();
    EXPECT_EQ(batched.tokens[id], tokens) << id;
    EXPECT_EQ(batched.reason[id], alone.reason[id]) << id;
  }
  // Requests shared decode steps, and late ones joined while others ran:
  // "d" (4th) produced its first token before "c" (3rd) finished.
  EXPECT_LT(batched_stats.decode_steps, alone_steps / 2);
  const auto first_d =
      std::find(batched.order.begin(), batched.order.end(), std::string("d"));
  const auto last_c =
      std::find(batched.order.rbegin(), batched.order.rend(), std::string("c"));
  EXPECT_LT(first_d - batched.order.begin(), batched.order.rend() - last_c - 1);
}

TEST(Generate, SameSeedSameTokensOtherSeedOtherTokens) {
  auto model = RandomModel();
  const std::string extra = R"(,"temperature":1.5,"seed":)";
  Recorded a = Serve(
      *model, 2,
      {Line("x", {1, 2}, 40, extra + "11"), Line("y", {1, 2}, 40, extra + "11"),
       Line("z", {1, 2}, 40, extra + "12")});
  EXPECT_EQ(a.tokens["x"], a.tokens["y"]);
  EXPECT_NE(a.tokens["x"], a.tokens["z"]);
}

TEST(Generate, ABadRequestIsReportedAndTheOthersGoOn) {
  auto model = RandomModel();
  Recorded r = Serve(*model, 2,
                     {Line("ok1", {1}, 4), Line("bad", {1, 200}, 4), "not json",
                      Line("ok1", {2}, 4), Line("ok2", {3}, 4)});
  EXPECT_EQ(r.tokens["ok1"].size(), 4u);
  EXPECT_EQ(r.tokens["ok2"].size(), 4u);
  EXPECT_THAT(r.error["bad"], HasSubstr("prompt_ids[1] = 200"));
  EXPECT_THAT(r.error[""], HasSubstr("not valid JSON"));
  // "ok1" is in flight when its second copy arrives.
  EXPECT_THAT(r.error["ok1"], HasSubstr("in flight"));
  EXPECT_EQ(r.tokens.count("bad"), 0u);
}

TEST(ParseRequest, RefusesBadFieldsNamingFieldValueAndRule) {
  const RequestLimits limits{97, 80};
  const RequestDefaults defaults;
  const std::string long_prompt =
      absl::StrCat("[", absl::StrJoin(std::vector<int>(80, 1), ","), "]");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"id":"x","prompt_ids":[]})",
       "prompt_ids: 0 tokens: must be 1 to context - 1 = 79"},
      {R"({"id":"x","prompt_ids":)" + long_prompt + "}",
       "prompt_ids: 80 tokens: must be 1 to context - 1 = 79"},
      {R"({"id":"x","prompt_ids":[1,97]})",
       "prompt_ids[1] = 97: must be >= 0 and < vocab_size = 97"},
      {R"({"id":"x","prompt_ids":[-1]})", "prompt_ids[0] = -1: must be >= 0"},
      {R"({"id":"x","prompt_ids":[1.5]})",
       "prompt_ids[0] = 1.5: must be an integer"},
      {R"({"id":"x","prompt_ids":"1,2"})",
       R"(prompt_ids = "1,2": must be an array)"},
      {R"({"id":"x","prompt_ids":[1],"max_new_tokens":0})",
       "max_new_tokens = 0: must be >= 1 and <= context = 80"},
      {R"({"id":"x","prompt_ids":[1],"max_new_tokens":81})",
       "max_new_tokens = 81: must be >= 1 and <= context = 80"},
      {R"({"id":"x","prompt_ids":[1],"temperature":-0.5})",
       "temperature = -0.5: must be >= 0 (0: greedy) and <= 100"},
      {R"({"id":"x","prompt_ids":[1],"temperature":"hot"})",
       R"(temperature = "hot": must be a finite number)"},
      {R"({"id":"x","prompt_ids":[1],"top_k":98})",
       "top_k = 98: must be >= 0 (0: off) and <= vocab_size = 97"},
      {R"({"id":"x","prompt_ids":[1],"top_p":0})",
       "top_p = 0: must be in (0, 1]"},
      {R"({"id":"x","prompt_ids":[1],"top_p":1.5})",
       "top_p = 1.5: must be in (0, 1]"},
      {R"({"id":"x","prompt_ids":[1],"seed":-3})",
       "seed = -3: must be an integer in [0, 2^64)"},
      {R"({"id":"x","prompt_ids":[1],"eos_id":97})",
       "eos_id = 97: must be -1 (none) or < vocab_size = 97"},
      {R"({"id":"x","prompt_ids":[1],"topk":5})", R"(field "topk": unknown)"},
      {R"({"id":12,"prompt_ids":[1]})", "id = 12: must be a string"},
      {R"({"id":"","prompt_ids":[1]})", R"(id = "": must be 1 to 128 bytes)"},
      {R"({"prompt_ids":[1]})", "id: required"},
      {R"({"id":"x"})", "prompt_ids: required"},
      {R"([1,2])", "request = an array: must be a JSON object"},
      {R"({"id":"x","prompt_ids":[1])", "request is not valid JSON"},
      {R"({"id":"x","id":"y","prompt_ids":[1]})", R"(duplicate field "id")"},
  };
  for (const auto& [line, message] : cases) {
    absl::StatusOr<GenerateRequest> r = ParseRequest(line, defaults, limits);
    ASSERT_FALSE(r.ok()) << line;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << line;
    EXPECT_THAT(r.status().message(), HasSubstr(message)) << line;
  }
}

TEST(ParseRequest, FieldsLeftOutTakeTheDefaults) {
  RequestDefaults defaults;
  defaults.max_new_tokens = 1000;  // above the context: clamped
  defaults.sampling = {.temperature = 0.5, .top_k = 7, .top_p = 0.9, .seed = 3};
  absl::StatusOr<GenerateRequest> r = ParseRequest(
      R"({"id":"q","prompt_ids":[1, 2],"top_k":0,"seed":18446744073709551615})",
      defaults, {97, 80});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, "q");
  EXPECT_EQ(r->prompt_ids, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(r->max_new_tokens, 80);
  EXPECT_EQ(r->sampling.temperature, 0.5);
  EXPECT_EQ(r->sampling.top_k, 0);
  EXPECT_EQ(r->sampling.top_p, 0.9);
  EXPECT_EQ(r->sampling.seed, 18446744073709551615ULL);
  EXPECT_EQ(RequestIdOf(R"({"id":"q\"x","prompt_ids":"no"})"), "q\"x");
  EXPECT_EQ(JsonQuote("q\"x\n"), R"("q\"x\n")");
}

TEST(Evaluate, LossEqualsTheTrainingLossOnTheSameTokens) {
  auto model = RandomModel();
  const int64_t t = kDims.context;
  std::vector<uint16_t> tokens(4 * t + 1);
  for (size_t i = 0; i < tokens.size(); ++i)
    tokens[i] = static_cast<uint16_t>((i * 37 + i / 7) % kDims.vocab_size);
  absl::StatusOr<EvalResult> r = Evaluate(*model, tokens, 4, 1000);
  ASSERT_TRUE(r.ok()) << r.status();
  // The same four windows as one batch through Gpt::Loss.
  std::vector<int64_t> in, out;
  for (int64_t w = 0; w < 4; ++w) {
    for (int64_t j = 0; j < t; ++j) {
      in.push_back(tokens[w * t + j]);
      out.push_back(tokens[w * t + j + 1]);
    }
  }
  at::NoGradGuard no_grad;
  const double expected = model
                              ->Loss(at::tensor(in, at::kLong).view({4, t}),
                                     at::tensor(out, at::kLong).view({4, t}))
                              .item<double>();
  EXPECT_EQ(r->tokens, 4 * t);
  EXPECT_DOUBLE_EQ(r->loss, expected);
  EXPECT_DOUBLE_EQ(r->bits_per_byte, expected * 4 * t / (std::log(2.0) * 1000));
  // Other batchings and a short tail window weigh every token once.
  tokens.resize(tokens.size() + 10, 3);
  absl::StatusOr<EvalResult> tail = Evaluate(*model, tokens, 3, 0);
  ASSERT_TRUE(tail.ok()) << tail.status();
  EXPECT_EQ(tail->tokens, 4 * t + 10);
  EXPECT_EQ(tail->bits_per_byte, 0);
  EXPECT_NEAR(tail->loss, std::log(97.0), 0.5);
}

TEST(Evaluate, RefusesAnIdOutsideTheVocabulary) {
  auto model = RandomModel();
  const std::vector<uint16_t> tokens = {1, 2, 97, 4};
  absl::StatusOr<EvalResult> r = Evaluate(*model, tokens, 4, 0);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr("token[2] = 97: must be < the model's vocab_size"));
}

TEST(ModelFile, RoundTripsBitwiseInFp32AndRoundsInBf16) {
  auto model = RandomModel(/*mup_base_width=*/16);
  const std::string dir = ::testing::TempDir();
  const std::string fp32 = dir + "/model_fp32.bin";
  const std::string bf16 = dir + "/model_bf16.bin";
  ASSERT_TRUE(WriteModelFile(fp32, *model, 16, at::kFloat).ok());
  ASSERT_TRUE(WriteModelFile(bf16, *model, 16, at::kBFloat16).ok());
  EXPECT_LT(std::filesystem::file_size(bf16),
            std::filesystem::file_size(fp32) * 6 / 10);
  absl::StatusOr<LoadedModel> a = ReadModelFile(fp32, at::kCPU, at::kFloat);
  absl::StatusOr<LoadedModel> b = ReadModelFile(bf16, at::kCPU, at::kFloat);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(a->mup_base_width, 16);
  EXPECT_EQ(a->dims.d_ff, kDims.d_ff);
  EXPECT_EQ(a->file_dtype, at::kFloat);
  EXPECT_EQ(b->file_dtype, at::kBFloat16);
  for (size_t i = 0; i < model->params().size(); ++i) {
    const at::Tensor& p = model->params()[i];
    EXPECT_TRUE(at::equal(a->model->params()[i], p)) << i;
    EXPECT_TRUE(
        at::equal(b->model->params()[i], p.to(at::kBFloat16).to(at::kFloat)))
        << i;
  }
}

TEST(ModelFile, RefusesATrainingCheckpoint) {
  const std::string path = ::testing::TempDir() + "/checkpoint.bin";
  ASSERT_TRUE(WriteCheckpoint(path, 1234, {}).ok());
  absl::StatusOr<LoadedModel> m = ReadModelFile(path, at::kCPU, at::kFloat);
  EXPECT_EQ(m.status().code(), absl::StatusCode::kFailedPrecondition)
      << m.status();
  EXPECT_EQ(
      ReadModelFile(path + ".missing", at::kCPU, at::kFloat).status().code(),
      absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace isoflop::trainer
