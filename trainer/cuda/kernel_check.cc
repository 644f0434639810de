// The GPU test of trainer/cuda/ (ctest label gpu; bench/run_issue6.sh runs
// it): each kernel against its fp32 ATen reference on random inputs, plus
// its time beside the ATen ops it replaces. Prints one JSON object; exit 1 if
// a check fails. No GoogleTest: the GPU host has LibTorch alone.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAEvent.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "trainer/cuda/kernels.h"

namespace isoflop::trainer::cuda {
namespace {

double TimeMs(const std::function<void()>& f, int reps = 20) {
  f();  // warm-up
  at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
  start.record();
  for (int i = 0; i < reps; ++i) f();
  stop.record();
  stop.synchronize();
  return start.elapsed_time(stop) / reps;
}

struct CeResult {
  double loss_err, grad_err, fused_ms, aten_ms;
  bool nan_for_bad_target;
};

CeResult CheckCrossEntropy(int64_t n, int64_t v) {
  const auto opts = at::TensorOptions().device(at::kCUDA);
  at::Tensor logits = (at::randn({n, v}, opts) * 3).to(at::kBFloat16);
  at::Tensor targets = at::randint(v, {n}, opts.dtype(at::kLong));
  const float scale = 0.5f / static_cast<float>(n);
  at::Tensor row = at::empty({n}, opts.dtype(at::kFloat));
  at::Tensor grad = at::empty_like(logits);
  auto fused = [&] {
    SoftmaxCrossEntropyBf16(logits.data_ptr(), targets.data_ptr<int64_t>(), n,
                            v, scale, row.data_ptr<float>(), grad.data_ptr(),
                            at::cuda::getCurrentCUDAStream().stream());
  };
  fused();
  const at::Tensor x = logits.to(at::kFloat);
  const at::Tensor logp = at::log_softmax(x, 1);
  const at::Tensor ref_row = -logp.gather(1, targets.unsqueeze(1)).squeeze(1);
  at::Tensor ref_grad = logp.exp();
  ref_grad.scatter_add_(1, targets.unsqueeze(1),
                        at::full({n, 1}, -1.0, ref_grad.options()));
  ref_grad.mul_(scale);
  CeResult r;
  r.loss_err = (row - ref_row).abs().max().item<double>();
  // Relative to the largest gradient: bf16 keeps 8 bits of mantissa.
  r.grad_err =
      ((grad.to(at::kFloat) - ref_grad).abs().max() / ref_grad.abs().max())
          .item<double>();
  // What the ATen path of trainer/model.cc runs: soft-max kept in bf16,
  // gather, scatter of -1, scale.
  r.aten_ms = TimeMs([&] {
    at::Tensor p = at::_softmax(logits, 1, false);
    (void)p.gather(1, targets.unsqueeze(1)).to(at::kFloat).log().mean();
    p.scatter_add_(1, targets.unsqueeze(1),
                   at::full({n, 1}, -1.0, p.options()));
    p.mul_(scale);
  });
  r.fused_ms = TimeMs(fused);
  targets[0] = v;  // out of range: that row's loss is NaN, the others finite
  fused();
  r.nan_for_bad_target =
      std::isnan(row[0].item<float>()) &&
      at::isfinite(row.narrow(0, 1, n - 1)).all().item<bool>();
  return r;
}

struct NormResult {
  double y_err, dx_err, dw_err, fused_ms, aten_ms;
};

double RelErr(const at::Tensor& got, const at::Tensor& want) {
  return ((got.to(at::kFloat) - want).abs().max() / want.abs().max())
      .item<double>();
}

NormResult CheckRmsNorm(int64_t rows, int64_t d) {
  const auto opts = at::TensorOptions().device(at::kCUDA);
  const double eps = 1e-6;
  at::Tensor x = (at::randn({rows, d}, opts) * 2).to(at::kBFloat16);
  at::Tensor w = (1 + 0.1 * at::randn({d}, opts)).to(at::kBFloat16);
  at::Tensor dy = at::randn({rows, d}, opts).to(at::kBFloat16);
  at::Tensor y = at::empty_like(x), dx = at::empty_like(x),
             dw = at::empty_like(w);
  at::Tensor rstd = at::empty({rows}, opts.dtype(at::kFloat));
  at::Tensor partials = at::empty({RmsNormPartials(d)}, opts.dtype(at::kFloat));
  auto stream = at::cuda::getCurrentCUDAStream().stream();
  auto fused = [&] {
    RmsNormForwardBf16(x.data_ptr(), nullptr, nullptr, w.data_ptr(), rows, d,
                       eps, y.data_ptr(), rstd.data_ptr<float>(), stream);
    RmsNormBackwardBf16(dy.data_ptr(), nullptr, x.data_ptr(), w.data_ptr(),
                        rstd.data_ptr<float>(), rows, d, dx.data_ptr(),
                        dw.data_ptr(), partials.data_ptr<float>(), stream);
  };
  fused();
  // fp32 reference through autograd.
  at::Tensor xr = x.to(at::kFloat).set_requires_grad(true);
  at::Tensor wr = w.to(at::kFloat).set_requires_grad(true);
  at::Tensor yr = at::rms_norm(xr, {d}, wr, eps);
  yr.backward(dy.to(at::kFloat));
  NormResult r;
  r.y_err = RelErr(y, yr.detach());
  r.dx_err = RelErr(dx, xr.grad());
  r.dw_err = RelErr(dw, wr.grad());
  at::Tensor xa = x.detach().set_requires_grad(true);
  at::Tensor wa = w.detach().set_requires_grad(true);
  r.aten_ms = TimeMs([&] {
    at::Tensor ya = at::rms_norm(xa, {d}, wa, eps);
    ya.backward(dy);
  });
  r.fused_ms = TimeMs(fused);
  return r;
}

// FusedAdamWBf16 state on the GPU: fp32 master weights and moments, bf16
// gradient and working copy, and the device scalars the trainer keeps.
struct AdamState {
  at::Tensor p, m, v, g, work, lr, step, clip, found_inf;
};

// `n` elements starting `offset` elements into their buffers (offset 1
// misaligns them: the one-element path).
AdamState NewAdamState(int64_t n, int64_t offset) {
  const auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  AdamState s;
  s.p = at::randn({n + offset}, f32).narrow(0, offset, n);
  s.m = at::zeros({n + offset}, f32).narrow(0, offset, n);
  s.v = at::zeros({n + offset}, f32).narrow(0, offset, n);
  s.g = at::zeros({n + offset}, f32.dtype(at::kBFloat16)).narrow(0, offset, n);
  s.work = s.p.to(at::kBFloat16);
  s.lr = at::zeros({}, f32);
  s.step = at::zeros({}, f32);
  s.clip = at::zeros({}, f32);
  s.found_inf = at::zeros({1}, f32);
  return s;
}

// What trainer/train.cc's fused path runs before the kernel: the norm of
// the bf16 gradients in fp32, found_inf, the clip coefficient.
void ClipAndFlag(AdamState& s) {
  const at::Tensor norm = at::linalg_vector_norm(s.g, 2, {}, false, at::kFloat);
  s.found_inf.copy_(at::logical_not(at::isfinite(norm)).reshape({1}));
  s.clip.copy_((1.0 / (norm + 1e-6)).clamp_max(1.0));
}

void RunFusedAdamW(AdamState& s, double weight_decay) {
  FusedAdamWBf16(s.p.data_ptr<float>(), s.g.data_ptr(), s.m.data_ptr<float>(),
                 s.v.data_ptr<float>(), s.work.data_ptr(), s.p.numel(),
                 s.lr.data_ptr<float>(), s.step.data_ptr<float>(),
                 s.clip.data_ptr<float>(), s.found_inf.data_ptr<float>(), 0.9,
                 0.95, weight_decay, 1e-8,
                 at::cuda::getCurrentCUDAStream().stream());
}

// The ATen path it replaces on fp32 copies (p, m, v of `ref`): fp32
// gradient, clip, _fused_adamw_.
void RunAtenAdamW(AdamState& ref, const AdamState& s, double weight_decay) {
  const at::Tensor g = s.g.to(at::kFloat).mul_(s.clip);
  at::_fused_adamw_({ref.p}, {g}, {ref.m}, {ref.v}, {}, {s.step}, s.lr, 0.9,
                    0.95, weight_decay, 1e-8, false, false, std::nullopt,
                    s.found_inf);
}

struct AdamResult {
  double p_err = 0, m_err = 0, v_err = 0, min_clip = 1;
  bool work_is_bf16_p = true, skip_unchanged = true;
};

// 5 steps of random gradients with norm ~3 (clip ~1/3); step 3 has an inf
// gradient, which must leave p, m, v and the working copy as they were.
AdamResult CheckAdamW(int64_t n, double weight_decay, int64_t offset) {
  AdamState s = NewAdamState(n, offset);
  AdamState ref = s;
  ref.p = s.p.clone();
  ref.m = s.m.clone();
  ref.v = s.v.clone();
  AdamResult r;
  for (int step = 1; step <= 5; ++step) {
    s.g.copy_(at::randn({n}, s.p.options()) * (3.0 / std::sqrt(n)));
    if (step == 3) s.g[n / 2] = INFINITY;
    s.lr.fill_(1e-3 * step);
    s.step.add_(1);
    ClipAndFlag(s);
    const std::vector<at::Tensor> before = {s.p.clone(), s.m.clone(),
                                            s.v.clone(), s.work.clone()};
    RunFusedAdamW(s, weight_decay);
    RunAtenAdamW(ref, s, weight_decay);
    if (step == 3) {
      r.skip_unchanged =
          s.found_inf.item<float>() == 1 && at::equal(before[0], s.p) &&
          at::equal(before[1], s.m) && at::equal(before[2], s.v) &&
          at::equal(before[3], s.work);
      s.step.sub_(s.found_inf[0]);
    } else {
      r.min_clip = std::min(r.min_clip, s.clip.item<double>());
    }
    r.p_err = std::max(r.p_err, RelErr(s.p, ref.p));
    r.m_err = std::max(r.m_err, RelErr(s.m, ref.m));
    r.v_err = std::max(r.v_err, RelErr(s.v, ref.v));
    r.work_is_bf16_p =
        r.work_is_bf16_p && at::equal(s.work, s.p.to(at::kBFloat16));
  }
  return r;
}

struct AdamTiming {
  double fused_ms, kernel_ms, aten_ms;
};

// Per step of `n` parameters: the fused path (bf16 norm, clip, kernel), the
// kernel alone, and the ATen sequence it replaces (cast of the gradients to
// fp32, norm, clip, _fused_adamw_, cast of the weights to bf16).
AdamTiming TimeAdamW(int64_t n) {
  AdamState s = NewAdamState(n, 0);
  s.g.copy_(at::randn({n}, s.p.options()) * (3.0 / std::sqrt(n)));
  s.lr.fill_(1e-4);
  s.step.fill_(10);
  at::Tensor flat_grad = at::empty({n}, s.p.options());
  AdamTiming t;
  t.fused_ms = TimeMs([&] {
    ClipAndFlag(s);
    RunFusedAdamW(s, 0.1);
  });
  t.kernel_ms = TimeMs([&] { RunFusedAdamW(s, 0.1); });
  t.aten_ms = TimeMs([&] {
    flat_grad.copy_(s.g);
    const at::Tensor norm = flat_grad.norm();
    s.found_inf.copy_(at::logical_not(at::isfinite(norm)).reshape({1}));
    flat_grad.mul_((1.0 / (norm + 1e-6)).clamp_max(1.0));
    at::_fused_adamw_({s.p}, {flat_grad}, {s.m}, {s.v}, {}, {s.step}, s.lr, 0.9,
                      0.95, 0.1, 1e-8, false, false, std::nullopt, s.found_inf);
    s.work.copy_(s.p);
  });
  return t;
}

// The FusedAdamWBf16 checks and timings as JSON keys appended to `json`;
// false if a check fails.
bool AppendAdamWChecks(std::string& json) {
  bool ok = true;
  struct Case {
    int64_t n;
    double weight_decay;
    int64_t offset;
  };
  for (const Case c : {Case{1000003, 0.1, 0}, Case{1000003, 0.0, 0},
                       Case{4096 * 257, 0.1, 1}, Case{3, 0.1, 0}}) {
    const AdamResult r = CheckAdamW(c.n, c.weight_decay, c.offset);
    // The same fp32/double math as ATen: a rounding or two at most.
    const bool pass = r.p_err < 1e-5 && r.m_err < 1e-5 && r.v_err < 1e-5 &&
                      r.work_is_bf16_p && r.skip_unchanged && r.min_clip < 1;
    ok = ok && pass;
    json += absl::StrFormat(
        R"("adamw_%d_wd%g_off%d": {"p_max_rel_err": %.3g, )"
        R"("m_max_rel_err": %.3g, "v_max_rel_err": %.3g, )"
        R"("work_is_bf16_p": %s, "skip_unchanged": %s, "min_clip": %.3g, )"
        R"("pass": %s}, )",
        c.n, c.weight_decay, c.offset, r.p_err, r.m_err, r.v_err,
        r.work_is_bf16_p ? "true" : "false",
        r.skip_unchanged ? "true" : "false", r.min_clip,
        pass ? "true" : "false");
  }
  for (const int64_t n : {int64_t{23} << 20, int64_t{172} << 20}) {
    const AdamTiming t = TimeAdamW(n);
    // p, m, v read and written, the bf16 gradient read, the bf16 copy written.
    const double gb_per_s = 28.0 * static_cast<double>(n) / t.kernel_ms / 1e6;
    json += absl::StrFormat(
        R"("adamw_time_%dM": {"fused_ms": %.4f, "kernel_ms": %.4f, )"
        R"("kernel_gb_per_s": %.0f, "aten_ms": %.4f}, )",
        n >> 20, t.fused_ms, t.kernel_ms, gb_per_s, t.aten_ms);
  }
  return ok;
}

int Main() {
  if (!Compiled() || !at::hasCUDA()) {
    std::printf("{\"error\": \"needs a CUDA device and a build with nvcc\"}\n");
    return 1;
  }
  at::manual_seed(1);
  bool ok = true;
  std::string json = "{";
  for (auto [n, v] : {std::pair<int64_t, int64_t>{16384, 10000}, {300, 1001}}) {
    const CeResult r = CheckCrossEntropy(n, v);
    const bool pass =
        r.loss_err < 2e-3 && r.grad_err < 1e-2 && r.nan_for_bad_target;
    ok = ok && pass;
    json += absl::StrFormat(
        R"("cross_entropy_%dx%d": {"loss_max_abs_err": %.3g, )"
        R"("grad_max_rel_err": %.3g, "nan_for_bad_target": %s, )"
        R"("fused_ms": %.4f, "aten_ms": %.4f, "pass": %s}, )",
        n, v, r.loss_err, r.grad_err, r.nan_for_bad_target ? "true" : "false",
        r.fused_ms, r.aten_ms, pass ? "true" : "false");
  }
  for (auto [rows, d] : {std::pair<int64_t, int64_t>{16384, 512},
                         {32768, 1024},
                         {1000, 96},
                         {333, 2048}}) {
    const NormResult r = CheckRmsNorm(rows, d);
    // bf16 outputs: 2^-8 relative rounding; dw sums `rows` products.
    const bool pass = r.y_err < 1e-2 && r.dx_err < 1e-2 && r.dw_err < 1e-2;
    ok = ok && pass;
    json += absl::StrFormat(
        R"("rms_norm_%dx%d": {"y_max_rel_err": %.3g, "dx_max_rel_err": %.3g, )"
        R"("dw_max_rel_err": %.3g, "fused_ms": %.4f, "aten_ms": %.4f, )"
        R"("pass": %s}, )",
        rows, d, r.y_err, r.dx_err, r.dw_err, r.fused_ms, r.aten_ms,
        pass ? "true" : "false");
  }
  ok = AppendAdamWChecks(json) && ok;
  json += absl::StrFormat(R"("pass": %s})", ok ? "true" : "false");
  std::printf("%s\n", json.c_str());
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace isoflop::trainer::cuda

int main() { return isoflop::trainer::cuda::Main(); }
