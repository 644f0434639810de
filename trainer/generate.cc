#include "trainer/generate.h"

#include <ATen/ATen.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/core/InferenceMode.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <numbers>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/token_file.h"
#include "trainer/model_file.h"

namespace isoflop::trainer {
namespace {

double MsSince(SteadyClock::time_point t) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - t)
      .count();
}

// Lines of a stream read on a thread of their own, so that requests written
// to stdin join the batch as they arrive. The thread is detached: it may sit
// in getline on a terminal when the process ends.
class StreamRequestSource : public RequestSource {
 public:
  explicit StreamRequestSource(std::unique_ptr<std::istream> owned,
                               std::istream* in)
      : shared_(std::make_shared<Shared>()) {
    std::thread([s = shared_, owned = std::move(owned), in] {
      std::string line;
      while (std::getline(*in, line)) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        std::lock_guard<std::mutex> lock(s->mu);
        s->lines.emplace_back(std::move(line), SteadyClock::now());
        s->cv.notify_one();
      }
      std::lock_guard<std::mutex> lock(s->mu);
      s->ended = true;
      s->cv.notify_one();
    }).detach();
  }

  Poll Next(bool wait, std::string& line,
            SteadyClock::time_point& arrived) override {
    std::unique_lock<std::mutex> lock(shared_->mu);
    if (wait) {
      shared_->cv.wait(
          lock, [&] { return !shared_->lines.empty() || shared_->ended; });
    }
    if (shared_->lines.empty())
      return shared_->ended ? Poll::kEnd : Poll::kEmpty;
    line = std::move(shared_->lines.front().first);
    arrived = shared_->lines.front().second;
    shared_->lines.pop_front();
    return Poll::kLine;
  }

 private:
  struct Shared {
    std::mutex mu;
    std::condition_variable cv;
    std::deque<std::pair<std::string, SteadyClock::time_point>> lines;
    bool ended = false;
  };
  std::shared_ptr<Shared> shared_;
};

// One uniform in [0, 1) per sampled token, exactly representable in fp32 (24
// bits) so that the device comparison cannot round it up to 1.
float Uniform(std::mt19937_64& rng) {
  return static_cast<float>(rng() >> 40) * 0x1.0p-24f;
}

// Picks one token per row of `logits` (R, V). `params` (R, 4) fp32 on the
// device holds per row: temperature (0: greedy), top_k (0: off), top_p,
// uniform u. Sampling: soft-max of logits / temperature sorted descending,
// keep the top_k first and the smallest prefix holding top_p of the mass,
// then the first token whose cumulative kept mass exceeds u * kept mass.
at::Tensor SampleRows(const at::Tensor& logits, const at::Tensor& params,
                      bool any_sampled) {
  at::Tensor greedy = logits.argmax(-1);  // (R)
  if (!any_sampled) return greedy;
  const int64_t v = logits.size(1);
  at::Tensor temperature = params.select(1, 0).unsqueeze(1);  // (R, 1)
  at::Tensor top_k = params.select(1, 1).unsqueeze(1);
  at::Tensor top_p = params.select(1, 2).unsqueeze(1);
  at::Tensor u = params.select(1, 3).unsqueeze(1);
  at::Tensor scaled =
      logits.to(at::kFloat) /
      at::where(temperature > 0, temperature, at::ones_like(temperature));
  auto [sorted, order] = scaled.sort(-1, /*descending=*/true);  // (R, V)
  at::Tensor p = at::softmax(sorted, -1);
  at::Tensor rank = at::arange(v, p.options()).unsqueeze(0);  // (1, V)
  at::Tensor keep =
      at::logical_and(at::logical_or(top_k <= 0, rank < top_k),
                      (p.cumsum(-1) - p) < top_p);  // the first is always kept
  at::Tensor kept = p * keep;
  at::Tensor cdf = kept.cumsum(-1);
  at::Tensor target = u * cdf.narrow(1, v - 1, 1);  // (R, 1)
  at::Tensor pick = (cdf <= target).sum(-1, /*keepdim=*/true).clamp_max(v - 1);
  at::Tensor sampled = order.gather(1, pick).squeeze(1);
  return at::where(temperature.squeeze(1) > 0, sampled, greedy);
}

}  // namespace

VectorRequestSource::VectorRequestSource(std::vector<std::string> lines)
    : lines_(std::move(lines)), arrived_(SteadyClock::now()) {}

RequestSource::Poll VectorRequestSource::Next(
    bool wait, std::string& line, SteadyClock::time_point& arrived) {
  if (next_ >= lines_.size()) return Poll::kEnd;
  line = lines_[next_++];
  arrived = arrived_;
  return Poll::kLine;
}

void JsonLinesSink::Token(const std::string& id, int64_t i, int64_t token) {
  std::fprintf(out_, "{\"id\":%s,\"i\":%lld,\"token\":%lld}\n",
               JsonQuote(id).c_str(), static_cast<long long>(i),
               static_cast<long long>(token));
}

void JsonLinesSink::Done(const std::string& id, int64_t n, double ttft_ms,
                         const std::string& reason) {
  std::fprintf(out_,
               "{\"id\":%s,\"done\":true,\"n\":%lld,\"ttft_ms\":%.3f,"
               "\"reason\":\"%s\"}\n",
               JsonQuote(id).c_str(), static_cast<long long>(n), ttft_ms,
               reason.c_str());
}

void JsonLinesSink::Error(const std::string& id, const std::string& message) {
  std::fprintf(out_, "{\"id\":%s,\"error\":%s}\n",
               id.empty() ? "null" : JsonQuote(id).c_str(),
               JsonQuote(message).c_str());
}

void JsonLinesSink::EndOfStep() { std::fflush(out_); }

// ---------------------------------------------------------------------------

struct Generator::State {
  struct Slot {
    GenerateRequest request;
    std::mt19937_64 rng;
    int64_t length = 0;  // prompt + generated tokens
    int64_t generated = 0;
    int64_t last_token = 0;  // generated, not yet fed to the model
    SteadyClock::time_point arrived;
    double ttft_ms = 0;
  };

  State(const Gpt& m, int64_t slots, bool graph, const RequestDefaults& d)
      : model(m),
        device(m.params()[0].device()),
        n_slots(slots),
        use_graph(graph && device.is_cuda()),
        defaults(d),
        slots(static_cast<size_t>(slots)) {}

  at::TensorOptions Long() const {
    return at::TensorOptions().device(device).dtype(at::kLong);
  }

  // Lazily: the cache and the static step inputs (their addresses are fixed
  // for the CUDA graph).
  void Allocate() {
    if (!cache.k.empty()) return;
    cache = model.NewKvCache(n_slots);
    step_inputs = at::zeros({2, n_slots}, Long());  // tokens, positions
    host_inputs = at::zeros(
        {2, n_slots},
        at::TensorOptions().dtype(at::kLong).pinned_memory(device.is_cuda()));
    host_params = at::zeros(
        {n_slots, 4},
        at::TensorOptions().dtype(at::kFloat).pinned_memory(device.is_cuda()));
  }

  // The decode step of every slot: eager, captured, or replayed.
  at::Tensor DecodeLogits() {
    step_inputs.copy_(host_inputs, /*non_blocking=*/true);
    if (graph) {
      graph->replay();
      return graph_logits;
    }
    if (!use_graph || eager_steps < 2) {
      ++eager_steps;
      return model.Decode(step_inputs[0], step_inputs[1], cache);
    }
    stream->synchronize();
    graph = std::make_unique<at::cuda::CUDAGraph>();
    graph->capture_begin();
    graph_logits = model.Decode(step_inputs[0], step_inputs[1], cache);
    graph->capture_end();
    graph->replay();
    return graph_logits;
  }

  // Sampling parameters of row `row` of host_params for `slot`.
  void SetParams(int64_t row, Slot& s) {
    float* p = host_params.data_ptr<float>() + 4 * row;
    const SamplingParams& sp = s.request.sampling;
    p[0] = static_cast<float>(sp.temperature);
    p[1] = static_cast<float>(sp.top_k);
    p[2] = static_cast<float>(sp.top_p);
    p[3] = sp.temperature > 0 ? Uniform(s.rng) : 0.0f;
  }

  // Records the token just generated for `slot_index`; true when the request
  // ended (its Done is sent).
  bool Emit(size_t slot_index, int64_t token, GenerateSink& sink) {
    Slot& s = *slots[slot_index];
    if (s.generated == 0) s.ttft_ms = MsSince(s.arrived);
    sink.Token(s.request.id, s.generated, token);
    ++s.generated;
    ++s.length;
    ++stats.tokens;
    s.last_token = token;
    const char* reason = nullptr;
    if (s.request.eos_id >= 0 && token == s.request.eos_id) {
      reason = "eos";
    } else if (s.generated >= s.request.max_new_tokens) {
      reason = "length";
    } else if (s.length >= model.dims().context) {
      reason = "context";
    }
    if (reason == nullptr) return false;
    sink.Done(s.request.id, s.generated, s.ttft_ms, reason);
    slots[slot_index].reset();
    return true;
  }

  // Prefills `r` into a free slot and emits its first token.
  void Admit(GenerateRequest r, SteadyClock::time_point arrived,
             GenerateSink& sink) {
    size_t free = 0;
    while (slots[free]) ++free;
    Slot s;
    s.rng.seed(r.sampling.seed);
    s.length = static_cast<int64_t>(r.prompt_ids.size());
    s.arrived = arrived;
    s.request = std::move(r);
    slots[free] = std::move(s);
    Slot& slot = *slots[free];
    at::Tensor prompt =
        at::tensor(slot.request.prompt_ids, at::TensorOptions(at::kLong))
            .to(device);
    at::Tensor logits =
        model.Prefill(prompt, cache, static_cast<int64_t>(free));
    at::Tensor params = at::empty({1, 4}, at::kFloat);
    float* p = params.data_ptr<float>();
    const SamplingParams& sp = slot.request.sampling;
    p[0] = static_cast<float>(sp.temperature);
    p[1] = static_cast<float>(sp.top_k);
    p[2] = static_cast<float>(sp.top_p);
    p[3] = sp.temperature > 0 ? Uniform(slot.rng) : 0.0f;
    const int64_t token =
        SampleRows(logits.unsqueeze(0), params.to(device), sp.temperature > 0)
            .item<int64_t>();
    Emit(free, token, sink);
  }

  void DecodeStep(GenerateSink& sink) {
    int64_t* tokens = host_inputs.data_ptr<int64_t>();
    int64_t* positions = tokens + n_slots;
    bool any_sampled = false;
    for (int64_t i = 0; i < n_slots; ++i) {
      std::optional<Slot>& s = slots[static_cast<size_t>(i)];
      tokens[i] = s ? s->last_token : 0;
      positions[i] = s ? s->length - 1 : 0;
      if (s) {
        SetParams(i, *s);
        any_sampled = any_sampled || s->request.sampling.temperature > 0;
      } else {
        std::fill_n(host_params.data_ptr<float>() + 4 * i, 4, 0.0f);
      }
    }
    at::Tensor logits = DecodeLogits();
    at::Tensor next =
        SampleRows(logits, host_params.to(device, /*non_blocking=*/true),
                   any_sampled)
            .to(at::kCPU);
    ++stats.decode_steps;
    const int64_t* next_ids = next.data_ptr<int64_t>();
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i]) Emit(i, next_ids[i], sink);
    }
  }

  bool AnyActive() const {
    return std::any_of(slots.begin(), slots.end(),
                       [](const auto& s) { return s.has_value(); });
  }
  bool AnyFree() const {
    return std::any_of(slots.begin(), slots.end(),
                       [](const auto& s) { return !s.has_value(); });
  }
  bool InFlight(const std::string& id) const {
    return std::any_of(slots.begin(), slots.end(),
                       [&](const auto& s) { return s && s->request.id == id; });
  }

  void Serve(RequestSource& source, GenerateSink& sink) {
    Allocate();
    const RequestLimits limits{model.dims().vocab_size, model.dims().context};
    bool ended = false;
    while (true) {
      while (!ended && AnyFree()) {
        std::string line;
        SteadyClock::time_point arrived;
        const RequestSource::Poll poll =
            source.Next(/*wait=*/!AnyActive(), line, arrived);
        if (poll == RequestSource::Poll::kEnd) ended = true;
        if (poll != RequestSource::Poll::kLine) break;
        ++stats.requests;
        absl::StatusOr<GenerateRequest> r =
            ParseRequest(line, defaults, limits);
        if (r.ok() && InFlight(r->id)) {
          r = absl::InvalidArgumentError(
              absl::StrCat("id = ", JsonQuote(r->id),
                           ": a request with this id is in "
                           "flight (ids must be unique)"));
        }
        if (!r.ok()) {
          ++stats.errors;
          sink.Error(RequestIdOf(line), std::string(r.status().message()));
          continue;
        }
        Admit(*std::move(r), arrived, sink);
      }
      sink.EndOfStep();
      if (!AnyActive()) {
        if (ended) break;
        continue;
      }
      DecodeStep(sink);
      sink.EndOfStep();
    }
  }

  const Gpt& model;
  at::Device device;
  int64_t n_slots;
  bool use_graph;
  RequestDefaults defaults;
  std::vector<std::optional<Slot>> slots;
  Gpt::KvCache cache;
  at::Tensor step_inputs, host_inputs, host_params, graph_logits;
  std::unique_ptr<at::cuda::CUDAGraph> graph;
  std::optional<c10::cuda::CUDAStream> stream;
  int64_t eager_steps = 0;
  ServeStats stats;
};

Generator::Generator(const Gpt& model, int64_t max_batch, bool cuda_graph,
                     const RequestDefaults& defaults)
    : state_(std::make_unique<State>(model, max_batch, cuda_graph, defaults)) {
  if (state_->device.is_cuda()) {
    state_->stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false,
                                                  state_->device.index());
  }
}

Generator::~Generator() = default;

absl::StatusOr<ServeStats> Generator::Serve(RequestSource& source,
                                            GenerateSink& sink) {
  state_->stats = {};
  try {
    // Graph capture needs a side stream; prefill and decode share it.
    std::optional<c10::cuda::CUDAStreamGuard> on_stream;
    if (state_->stream) on_stream.emplace(*state_->stream);
    c10::InferenceMode inference;
    state_->Serve(source, sink);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("generate: ", e.what()));
  }
  return state_->stats;
}

// ---------------------------------------------------------------------------

namespace {

absl::StatusOr<at::Device> DeviceOf(const std::string& device) {
  if (device == "cpu") return at::Device(at::kCPU);
  if (device != "cuda") {
    return absl::InvalidArgumentError(
        absl::StrCat("--device = ", device, ": must be cpu or cuda"));
  }
  if (!torch::cuda::is_available())
    return absl::InvalidArgumentError("--device = cuda: no CUDA device");
  return at::Device(at::kCUDA, 0);
}

absl::StatusOr<at::ScalarType> DtypeOf(const std::string& dtype,
                                       at::Device device) {
  if (dtype == "fp32") return at::kFloat;
  if (dtype == "bf16") return at::kBFloat16;
  if (dtype == "auto") return device.is_cuda() ? at::kBFloat16 : at::kFloat;
  return absl::InvalidArgumentError(
      absl::StrCat("--dtype = ", dtype, ": must be auto, bf16 or fp32"));
}

// Records the times of the first and last tokens (bench).
class TimingSink : public GenerateSink {
 public:
  void Token(const std::string&, int64_t i, int64_t) override {
    if (i == 0) {
      last_first = SteadyClock::now();
      ++firsts;
    }
    ++tokens;
  }
  void Done(const std::string&, int64_t, double ttft_ms,
            const std::string&) override {
    ttft_sum_ms += ttft_ms;
  }
  void Error(const std::string& id, const std::string& message) override {
    error = id + ": " + message;
  }
  int64_t tokens = 0, firsts = 0;
  double ttft_sum_ms = 0;
  SteadyClock::time_point last_first;
  std::string error;
};

absl::Status RunBench(const GenerateFlags& f, const Gpt& model,
                      const std::string& dtype_name, at::Device device) {
  const ModelDims& d = model.dims();
  const int64_t prompt = f.bench_prompt_tokens;
  const int64_t new_tokens = f.bench_new_tokens;
  if (prompt < 1 || prompt + new_tokens > d.context || new_tokens < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("--bench-prompt-tokens = ", prompt,
                     ", --bench-new-tokens = ", new_tokens,
                     ": need prompt >= 1, new >= 2 and prompt + new <= context "
                     "= ",
                     d.context));
  }
  std::mt19937_64 rng(f.defaults.sampling.seed);
  for (const int64_t batch : f.bench_batches) {
    if (batch < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--bench-batches: ", batch, ": must be >= 1"));
    }
    auto lines = [&](int round) {
      std::vector<std::string> out;
      for (int64_t i = 0; i < batch; ++i) {
        std::vector<int64_t> ids(static_cast<size_t>(prompt));
        for (int64_t& id : ids)
          id =
              static_cast<int64_t>(rng() % static_cast<uint64_t>(d.vocab_size));
        out.push_back(absl::StrFormat(
            R"({"id":"b%d-%d","prompt_ids":[%s],"max_new_tokens":%d})", round,
            i, absl::StrJoin(ids, ","), new_tokens));
      }
      return out;
    };
    Generator gen(model, batch, f.cuda_graphs, f.defaults);
    {  // warm-up: allocations, cuBLAS plans and the graph capture
      VectorRequestSource warm(lines(0));
      TimingSink sink;
      RETURN_IF_ERROR(gen.Serve(warm, sink).status());
      if (!sink.error.empty()) return absl::InternalError(sink.error);
    }
    if (device.is_cuda()) torch::cuda::synchronize();
    VectorRequestSource timed(lines(1));
    TimingSink sink;
    const auto start = SteadyClock::now();
    ASSIGN_OR_RETURN(ServeStats stats, gen.Serve(timed, sink));
    const auto end = SteadyClock::now();
    const double decode_s =
        std::chrono::duration<double>(end - sink.last_first).count();
    const double decode_tokens = static_cast<double>(sink.tokens - batch);
    const double tokens_per_s = decode_tokens / std::max(decode_s, 1e-9);
    const double ttft_ms = sink.ttft_sum_ms / static_cast<double>(batch);
    const double first_all_ms =
        std::chrono::duration<double, std::milli>(sink.last_first - start)
            .count();
    const double ms_per_step =
        1e3 * decode_s /
        static_cast<double>(std::max<int64_t>(1, stats.decode_steps));
    const bool graph = f.cuda_graphs && device.is_cuda();
    std::printf(
        "{\"batch\": %lld, \"prompt_tokens\": %lld, \"new_tokens\": %lld, "
        "\"decode_tokens_per_s\": %.1f, \"ms_per_decode_step\": %.4f, "
        "\"ttft_ms\": %.3f, \"all_first_tokens_ms\": %.3f, \"device\": "
        "\"%s\", \"dtype\": \"%s\", \"cuda_graph\": %s, \"n_params\": %lld, "
        "\"vocab_size\": %lld, \"context\": %lld, \"d_model\": %lld, "
        "\"n_layers\": %lld, \"n_heads\": %lld, \"d_ff\": %lld}\n",
        static_cast<long long>(batch), static_cast<long long>(prompt),
        static_cast<long long>(new_tokens), tokens_per_s, ms_per_step, ttft_ms,
        first_all_ms, device.str().c_str(), dtype_name.c_str(),
        graph ? "true" : "false", static_cast<long long>(model.NumParams()),
        static_cast<long long>(d.vocab_size), static_cast<long long>(d.context),
        static_cast<long long>(d.d_model), static_cast<long long>(d.n_layers),
        static_cast<long long>(d.n_heads), static_cast<long long>(d.d_ff));
    std::fflush(stdout);
    std::fprintf(stderr,
                 "isoflop-trainer generate --bench: batch %3lld: %10.1f "
                 "tokens/s decode (%.3f ms/step), time to first token %.2f ms "
                 "(mean over the batch; all %lld first tokens after %.2f ms); "
                 "%s %s%s, prompt %lld + %lld new tokens\n",
                 static_cast<long long>(batch), tokens_per_s, ms_per_step,
                 ttft_ms, static_cast<long long>(batch), first_all_ms,
                 device.str().c_str(), dtype_name.c_str(),
                 graph ? ", CUDA graph" : "", static_cast<long long>(prompt),
                 static_cast<long long>(new_tokens));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunGenerate(const GenerateFlags& f) {
  ASSIGN_OR_RETURN(const at::Device device, DeviceOf(f.device));
  ASSIGN_OR_RETURN(const at::ScalarType dtype, DtypeOf(f.dtype, device));
  const std::string dtype_name = dtype == at::kFloat ? "fp32" : "bf16";
  if (f.max_batch < 1 || f.max_batch > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max-batch = ", f.max_batch, ": must be >= 1 and <= 4096"));
  }
  const int inputs = static_cast<int>(!f.prompt_ids.empty()) +
                     static_cast<int>(!f.requests.empty());
  if (!f.bench && inputs != 1) {
    return absl::InvalidArgumentError(
        "--prompt-ids, --requests: give exactly one (or --bench)");
  }
  if (!f.bench && f.model_path.empty())
    return absl::InvalidArgumentError("--model: required (except --bench)");
  at::set_num_threads(f.threads);
  torch::manual_seed(f.defaults.sampling.seed);
  std::unique_ptr<Gpt> random_model;
  LoadedModel loaded;
  const Gpt* model = nullptr;
  if (!f.model_path.empty()) {
    ASSIGN_OR_RETURN(loaded, ReadModelFile(f.model_path, device, dtype));
    model = loaded.model.get();
  } else {
    const ModelDims& d = f.bench_dims;
    if (d.vocab_size < 1 || d.context < 2 || d.d_model < 1 || d.n_layers < 1 ||
        d.n_heads < 1 || d.d_model % d.n_heads != 0 || d.d_ff < 1) {
      return absl::InvalidArgumentError(
          "--vocab-size, --context, --d-model, --n-layers, --n-heads, --d-ff: "
          "must be >= 1 (context >= 2) with n-heads dividing d-model");
    }
    random_model = std::make_unique<Gpt>(d, device);
    at::NoGradGuard no_grad;
    for (const at::Tensor& p : random_model->params()) {
      p.set_requires_grad(false);
      p.set_data(p.detach().to(dtype));
    }
    model = random_model.get();
  }
  if (f.bench) return RunBench(f, *model, dtype_name, device);
  const RequestLimits limits{model->dims().vocab_size, model->dims().context};
  std::unique_ptr<RequestSource> source;
  if (!f.prompt_ids.empty()) {
    GenerateRequest r;
    r.id = "prompt";
    r.prompt_ids = f.prompt_ids;
    r.max_new_tokens = std::min(f.defaults.max_new_tokens, limits.context);
    r.sampling = f.defaults.sampling;
    r.eos_id = f.defaults.eos_id;
    absl::Status valid = ValidateRequest(r, limits);
    if (!valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--prompt-ids / flags: ", valid.message()));
    }
    source = std::make_unique<VectorRequestSource>(std::vector<std::string>{
        absl::StrFormat(R"({"id":"prompt","prompt_ids":[%s]})",
                        absl::StrJoin(f.prompt_ids, ","))});
  } else if (f.requests == "-") {
    source = std::make_unique<StreamRequestSource>(nullptr, &std::cin);
  } else {
    auto file = std::make_unique<std::ifstream>(f.requests);
    if (!*file) {
      return absl::NotFoundError(
          absl::StrCat("--requests = ", f.requests, ": cannot open"));
    }
    std::istream* in = file.get();
    source = std::make_unique<StreamRequestSource>(std::move(file), in);
  }
  Generator gen(*model, f.max_batch, f.cuda_graphs, f.defaults);
  JsonLinesSink sink(stdout);
  ASSIGN_OR_RETURN(const ServeStats stats, gen.Serve(*source, sink));
  std::fprintf(stderr,
               "isoflop-trainer generate: %lld request(s), %lld refused, %lld "
               "tokens in %lld decode steps (%s %s%s)\n",
               static_cast<long long>(stats.requests),
               static_cast<long long>(stats.errors),
               static_cast<long long>(stats.tokens),
               static_cast<long long>(stats.decode_steps), device.str().c_str(),
               dtype_name.c_str(),
               f.cuda_graphs && device.is_cuda() ? ", CUDA graph" : "");
  return absl::OkStatus();
}

absl::StatusOr<EvalResult> Evaluate(const Gpt& model, TokenSpan tokens,
                                    int64_t batch, int64_t bytes) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t t = model.dims().context, v = model.dims().vocab_size;
  if (n < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("data: ", n, " tokens: must be >= 2"));
  }
  if (batch < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--batch = ", batch, ": must be >= 1"));
  }
  if (const size_t i = tokens.FindIdAtLeast(static_cast<uint64_t>(v));
      i < tokens.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("data: token[", i, "] = ", tokens[i],
                     ": must be < the model's vocab_size = ", v));
  }
  const at::Device device = model.params()[0].device();
  at::NoGradGuard no_grad;
  double sum = 0;                    // nats over predicted tokens
  const int64_t full = (n - 1) / t;  // windows of t predictions
  auto run = [&](int64_t first_window, int64_t rows, int64_t len) {
    at::Tensor host = at::empty({rows, len + 1}, at::kLong);
    int64_t* dst = host.data_ptr<int64_t>();
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t off = (first_window + r) * t;
      tokens.CopyTo(static_cast<size_t>(off), static_cast<size_t>(len + 1),
                    dst + r * (len + 1));
    }
    at::Tensor seqs = host.to(device);
    const double loss =
        model.Loss(seqs.narrow(1, 0, len), seqs.narrow(1, 1, len))
            .item<double>();
    sum += loss * static_cast<double>(rows * len);
  };
  for (int64_t w = 0; w < full; w += batch)
    run(w, std::min(batch, full - w), t);
  const int64_t tail = n - 1 - full * t;
  if (tail > 0) run(full, 1, tail);
  EvalResult r;
  r.tokens = n - 1;
  r.loss = sum / static_cast<double>(r.tokens);
  if (bytes > 0) {
    r.bits_per_byte = r.loss * static_cast<double>(r.tokens) /
                      (std::numbers::ln2 * static_cast<double>(bytes));
  }
  return r;
}

absl::Status RunEval(const EvalFlags& f) {
  if (f.bytes < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--bytes = ", f.bytes, ": must be >= 0 (0: unknown)"));
  }
  ASSIGN_OR_RETURN(const at::Device device, DeviceOf(f.device));
  at::set_num_threads(f.threads);
  ASSIGN_OR_RETURN(const TokenFile data, TokenFile::Open(f.data_path));
  ASSIGN_OR_RETURN(const LoadedModel loaded,
                   ReadModelFile(f.model_path, device, at::kFloat));
  const auto start = SteadyClock::now();
  absl::StatusOr<EvalResult> r;
  try {
    r = Evaluate(*loaded.model, data.tokens(), f.batch, f.bytes);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("eval: ", e.what()));
  }
  if (!r.ok()) {
    return absl::Status(r.status().code(),
                        absl::StrCat(f.data_path, ": ", r.status().message()));
  }
  std::string bpb;
  if (f.bytes > 0)
    bpb = absl::StrFormat(R"(, "bytes": %d, "bits_per_byte": %.6f)", f.bytes,
                          r->bits_per_byte);
  std::printf(
      "{\"loss\": %.6f, \"tokens\": %lld%s, \"model\": %s, \"data\": %s, "
      "\"seconds\": %.3f}\n",
      r->loss, static_cast<long long>(r->tokens), bpb.c_str(),
      JsonQuote(f.model_path).c_str(), JsonQuote(f.data_path).c_str(),
      MsSince(start) / 1e3);
  return absl::OkStatus();
}

}  // namespace isoflop::trainer
