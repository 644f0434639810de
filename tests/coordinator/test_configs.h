// Shared fixtures for the coordinator tests: a small valid CPU sweep config
// and a fresh temporary directory per test.
#ifndef ISOFLOP_TESTS_COORDINATOR_TEST_CONFIGS_H_
#define ISOFLOP_TESTS_COORDINATOR_TEST_CONFIGS_H_

#include <unistd.h>

#include <filesystem>
#include <string>
#include <tuple>

#include "gtest/gtest.h"
#include "isoflop/v1/config.pb.h"

namespace isoflop::coordinator::testing {

// 2 budgets x 3 shapes = 6 CPU trials; vocab 512, T 64, B 16 (1024
// tokens/step). Shape 0 (d 32, L 2) has 294912 FLOPs/token, so budget 1e11
// buys floor(1e11 / (294912 * 1024)) = 331 steps.
inline v1::SweepConfig SmallConfig() {
  v1::SweepConfig c;
  c.set_name("unit");
  c.mutable_model()->set_vocab_size(512);
  c.mutable_model()->set_context(64);
  c.mutable_grid()->add_flops_budgets(1e11);
  c.mutable_grid()->add_flops_budgets(3e11);
  for (auto [d, l, h] :
       {std::tuple{32, 2, 2}, std::tuple{48, 2, 4}, std::tuple{64, 3, 4}}) {
    v1::ModelShape* s = c.mutable_grid()->add_model_shapes();
    s->set_d_model(d);
    s->set_n_layers(l);
    s->set_n_heads(h);
  }
  c.mutable_training()->set_batch_sequences(16);
  c.mutable_training()->set_lr(1e-2);
  c.mutable_training()->set_warmup_fraction(0.05);
  c.mutable_training()->set_min_lr_fraction(0.1);
  c.mutable_data()->set_dataset("kjv-bpe512");
  c.mutable_resources()->set_max_attempts(2);
  return c;
}

// A fresh, empty directory under the test temp dir, unique per test.
inline std::string FreshDir() {
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      (std::string("coord-") + info->test_suite_name() + "-" + info->name() +
       "-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace isoflop::coordinator::testing

#endif  // ISOFLOP_TESTS_COORDINATOR_TEST_CONFIGS_H_
