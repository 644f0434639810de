// Workers' dataset reports and what submit and leasing make of them
// (coordinator/service/dataset_check.h, docs/architecture.md §2 "Datasets"):
// the pure check, the core with a fake clock, and the real gRPC server on
// loopback.
#include "coordinator/service/dataset_check.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/fake_clock.h"
#include "coordinator/service/core.h"
#include "coordinator/service/server.h"
#include "coordinator/store/fake_trial_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "isoflop/v1/service.grpc.pb.h"
#include "tests/coordinator/test_configs.h"

namespace isoflop::coordinator {
namespace {

using ::isoflop::coordinator::testing::SmallConfig;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

v1::WorkerDataset Dataset(const std::string& name, uint32_t vocab,
                          uint64_t train_tokens = 1'000'000) {
  v1::WorkerDataset d;
  d.set_name(name);
  d.set_vocab_size(vocab);
  d.set_train_tokens(train_tokens);
  d.set_val_tokens(train_tokens / 20);
  return d;
}

LeaseTable::LiveDatasets Live(const std::string& id,
                              std::vector<v1::WorkerDataset> datasets,
                              bool reports = true, bool draining = false) {
  return {id, draining, reports, std::move(datasets)};
}

// ---------------------------------------------------------------- pure

TEST(CheckSweepData, AcceptsWhenALiveWorkerHoldsItAndGivesItsTokens) {
  const SweepDataCheck c =
      CheckSweepData("kjv", 512,
                     {Live("wk-a", {Dataset("tiny", 256)}),
                      Live("wk-b", {Dataset("kjv", 512, 800'000)})});
  EXPECT_TRUE(c.refusal.ok()) << c.refusal;
  EXPECT_THAT(c.pending_reason, IsEmpty());
  EXPECT_EQ(c.unique_tokens, 800'000u);
}

TEST(CheckSweepData, NoLiveWorkerHoldsTheSweepPendingWithAReason) {
  const SweepDataCheck c = CheckSweepData("kjv-bpe512", 512, {});
  EXPECT_TRUE(c.refusal.ok());
  EXPECT_EQ(c.pending_reason,
            "waiting for a worker that holds dataset kjv-bpe512 with "
            "vocabulary 512 (no worker is live)");
  EXPECT_EQ(c.unique_tokens, 0u);
}

TEST(CheckSweepData, RefusesADatasetNoReportingWorkerHoldsNamingWhoHoldsWhat) {
  const SweepDataCheck c =
      CheckSweepData("kjv", 512,
                     {Live("wk-a", {Dataset("tiny", 256), Dataset("syn", 64)}),
                      Live("wk-b", {})});
  EXPECT_EQ(c.refusal.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(c.refusal.message(),
              AllOf(HasSubstr("data.dataset = \"kjv\": no live worker holds "
                              "it"),
                    HasSubstr("wk-a holds tiny (vocab 256), syn (vocab 64)"),
                    HasSubstr("wk-b holds none")));
  EXPECT_THAT(c.pending_reason, HasSubstr("waiting for a worker that holds "
                                          "dataset kjv"));
}

TEST(CheckSweepData, RefusesAVocabularyOtherThanTheDatasets) {
  const SweepDataCheck c =
      CheckSweepData("kjv", 512, {Live("wk-a", {Dataset("kjv", 10000)})});
  EXPECT_EQ(c.refusal.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.refusal.message(),
              AllOf(HasSubstr("model.vocab_size = 512: must equal the "
                              "vocabulary of dataset kjv"),
                    HasSubstr("10000 on wk-a")));
}

TEST(CheckSweepData, AWorkerThatDoesNotReportMayHoldItSoNothingIsRefused) {
  const SweepDataCheck c = CheckSweepData(
      "kjv", 512, {Live("wk-a", {}), Live("wk-old", {}, /*reports=*/false)});
  EXPECT_TRUE(c.refusal.ok());
  EXPECT_THAT(c.pending_reason, IsEmpty());
}

TEST(CheckSweepData, OnlyDrainingHoldersHoldTheSweepPending) {
  const SweepDataCheck c =
      CheckSweepData("kjv", 512,
                     {Live("wk-a", {Dataset("kjv", 512)}, /*reports=*/true,
                           /*draining=*/true)});
  EXPECT_TRUE(c.refusal.ok());
  EXPECT_THAT(c.pending_reason, HasSubstr("its holders are draining: wk-a"));
}

TEST(ValidateWorkerDatasets, RefusesEachBadEntryNamingFieldValueAndRule) {
  struct Case {
    v1::WorkerDataset d;
    std::string message;
  };
  v1::WorkerDataset slash = Dataset("a/b", 64);
  v1::WorkerDataset dot = Dataset(".hidden", 64);
  v1::WorkerDataset vocab = Dataset("x", 1);
  v1::WorkerDataset tokens = Dataset("x", 64, 0);
  v1::WorkerDataset control = Dataset(std::string("k\x1bj", 3), 64);
  for (const Case& c : {
           Case{slash,
                "datasets[0].name = \"a/b\": must be 1 to 140 "
                "printable ASCII bytes, no '/'"},
           Case{dot, "datasets[0].name = \".hidden\": must be"},
           Case{control, "datasets[0].name = \"k\\x1bj\": must be"},
           Case{vocab, "datasets[0].vocab_size = 1: must be >= 2"},
           Case{tokens, "datasets[0].train_tokens = 0: must be >= 1"},
       }) {
    google::protobuf::RepeatedPtrField<v1::WorkerDataset> list;
    *list.Add() = c.d;
    const absl::Status s = ValidateWorkerDatasets(list);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(s.message(), HasSubstr(c.message));
  }
  google::protobuf::RepeatedPtrField<v1::WorkerDataset> twice;
  *twice.Add() = Dataset("kjv", 512);
  *twice.Add() = Dataset("kjv", 512);
  EXPECT_THAT(ValidateWorkerDatasets(twice).message(),
              HasSubstr("datasets[1].name = \"kjv\": must be distinct"));
}

TEST(FillDataRepetition, SetsUniqueTokensAndEpochsOnce) {
  v1::TrialSpec spec;
  spec.set_tokens(3'000'000);
  EXPECT_FALSE(FillDataRepetition(0, spec));
  EXPECT_EQ(spec.unique_tokens(), 0u);
  EXPECT_TRUE(FillDataRepetition(1'000'000, spec));
  EXPECT_EQ(spec.unique_tokens(), 1'000'000u);
  EXPECT_DOUBLE_EQ(spec.epochs(), 3.0);
  EXPECT_FALSE(FillDataRepetition(2'000'000, spec));
  EXPECT_EQ(spec.unique_tokens(), 1'000'000u);
}

// ---------------------------------------------------------------- core

class CoreDatasetTest : public ::testing::Test {
 protected:
  absl::StatusOr<v1::SubmitSweepResponse> Submit(
      v1::SweepConfig config = SmallConfig()) {
    v1::SubmitSweepRequest request;
    *request.mutable_config() = std::move(config);
    return core_.Submit(request);
  }
  absl::Status Register(const std::string& id,
                        std::vector<v1::WorkerDataset> datasets,
                        bool reports = true) {
    v1::RegisterWorkerRequest request;
    request.set_worker_id(id);
    request.mutable_resources()->set_cpu_slots(4);
    request.set_reports_datasets(reports);
    for (v1::WorkerDataset& d : datasets) *request.add_datasets() = d;
    return core_.RegisterWorker(request).status();
  }
  v1::LeaseTrialResponse Lease(const std::string& worker) {
    v1::LeaseTrialRequest request;
    request.set_worker_id(worker);
    request.set_free_cpu_slots(1);
    return core_.LeaseTrial(request).value();
  }

  FakeClock clock_;
  FakeTrialStore store_;
  Core core_{&store_, &clock_,
             CoreOptions{.lease_ttl = absl::Seconds(30),
                         .heartbeat_interval = absl::Seconds(2)}};
};

TEST_F(CoreDatasetTest, SubmitWithNoWorkerIsHeldPendingUntilAHolderRegisters) {
  absl::StatusOr<v1::SubmitSweepResponse> r = Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  v1::Sweep sweep = core_.GetSweep(r->sweep_id()).value();
  EXPECT_EQ(sweep.state(), v1::SWEEP_RUNNING);
  EXPECT_EQ(sweep.pending_reason(),
            "waiting for a worker that holds dataset kjv-bpe512 with "
            "vocabulary 512 (no worker is live)");
  EXPECT_EQ(core_.ListSweeps().sweeps(0).pending_reason(),
            sweep.pending_reason());
  EXPECT_EQ(sweep.trials(0).spec().unique_tokens(), 0u);
  // A worker without it changes the reason, not the hold.
  ASSERT_TRUE(Register("wk-a", {Dataset("tiny", 256)}).ok());
  EXPECT_FALSE(Lease("wk-a").has_assignment());
  sweep = core_.GetSweep(r->sweep_id()).value();
  EXPECT_THAT(sweep.pending_reason(), HasSubstr("wk-a holds tiny"));
  // One with it releases the sweep: its trials lease there, with their
  // unique tokens and epochs.
  ASSERT_TRUE(Register("wk-b", {Dataset("kjv-bpe512", 512, 40'000)}).ok());
  EXPECT_THAT(core_.GetSweep(r->sweep_id()).value().pending_reason(),
              IsEmpty());
  const v1::LeaseTrialResponse lease = Lease("wk-b");
  ASSERT_TRUE(lease.has_assignment());
  EXPECT_EQ(lease.spec().unique_tokens(), 40'000u);
  EXPECT_DOUBLE_EQ(lease.spec().epochs(),
                   static_cast<double>(lease.spec().tokens()) / 40'000);
  // Stored with the lease: a restarted coordinator still has them.
  std::vector<SweepRecord> stored = store_.LoadAll().value();
  bool found = false;
  for (const TrialRecord& t : stored[0].trials) {
    if (t.trial.spec().trial_id() != lease.spec().trial_id()) continue;
    found = true;
    EXPECT_EQ(t.trial.spec().unique_tokens(), 40'000u);
  }
  EXPECT_TRUE(found);
}

TEST_F(CoreDatasetTest, SubmitRefusesADatasetTheLiveWorkersDoNotHold) {
  ASSERT_TRUE(Register("wk-a", {Dataset("tiny", 256)}).ok());
  absl::StatusOr<v1::SubmitSweepResponse> r = Submit();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(),
              AllOf(HasSubstr("data.dataset = \"kjv-bpe512\""),
                    HasSubstr("wk-a holds tiny (vocab 256)")));
  EXPECT_EQ(core_.ListSweeps().sweeps_size(), 0);
}

TEST_F(CoreDatasetTest, SubmitRefusesAVocabularyOtherThanTheDatasets) {
  ASSERT_TRUE(Register("wk-a", {Dataset("kjv-bpe512", 256)}).ok());
  absl::StatusOr<v1::SubmitSweepResponse> r = Submit();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model.vocab_size = 512"));
}

TEST_F(CoreDatasetTest, SubmitFillsUniqueTokensAndEpochsFromTheReports) {
  ASSERT_TRUE(Register("wk-a", {Dataset("kjv-bpe512", 512, 1'000)}).ok());
  absl::StatusOr<v1::SubmitSweepResponse> r = Submit();
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::Sweep sweep = core_.GetSweep(r->sweep_id()).value();
  for (const v1::Trial& t : sweep.trials()) {
    EXPECT_EQ(t.spec().unique_tokens(), 1'000u);
    EXPECT_DOUBLE_EQ(t.spec().epochs(),
                     static_cast<double>(t.spec().tokens()) / 1'000);
  }
}

TEST_F(CoreDatasetTest, LeasesATrialOnlyToAWorkerHoldingItsDataset) {
  ASSERT_TRUE(Register("wk-has", {Dataset("kjv-bpe512", 512)}).ok());
  ASSERT_TRUE(Register("wk-not", {Dataset("tiny", 256)}).ok());
  ASSERT_TRUE(Submit().ok());
  EXPECT_FALSE(Lease("wk-not").has_assignment());
  EXPECT_TRUE(Lease("wk-has").has_assignment());
}

TEST_F(CoreDatasetTest, AHeartbeatReplacesTheReportedDatasets) {
  ASSERT_TRUE(Register("wk-a", {}).ok());
  ASSERT_EQ(core_.ListWorkers().workers(0).datasets_size(), 0);
  v1::HeartbeatRequest hb;
  hb.set_worker_id("wk-a");
  hb.set_reports_datasets(true);
  *hb.add_datasets() = Dataset("kjv-bpe512", 512);
  ASSERT_TRUE(core_.Heartbeat(hb).ok());
  const v1::Worker w = core_.ListWorkers().workers(0);
  EXPECT_TRUE(w.reports_datasets());
  ASSERT_EQ(w.datasets_size(), 1);
  EXPECT_EQ(w.datasets(0).name(), "kjv-bpe512");
  EXPECT_TRUE(Submit().ok());
  // A bad report is refused, naming the field, and changes nothing.
  hb.mutable_datasets(0)->set_vocab_size(0);
  EXPECT_THAT(core_.Heartbeat(hb).status().message(),
              HasSubstr("datasets[0].vocab_size = 0: must be >= 2"));
  EXPECT_EQ(core_.ListWorkers().workers(0).datasets(0).vocab_size(), 512u);
}

TEST_F(CoreDatasetTest, ALostHolderHoldsTheSweepPendingAgain) {
  ASSERT_TRUE(Register("wk-a", {Dataset("kjv-bpe512", 512)}).ok());
  absl::StatusOr<v1::SubmitSweepResponse> r = Submit();
  ASSERT_TRUE(r.ok());
  EXPECT_THAT(core_.GetSweep(r->sweep_id()).value().pending_reason(),
              IsEmpty());
  clock_.Advance(absl::Seconds(7));  // > 3 heartbeat intervals
  EXPECT_THAT(core_.GetSweep(r->sweep_id()).value().pending_reason(),
              HasSubstr("(no worker is live)"));
}

// ------------------------------------------------------- gRPC loopback

constexpr char kUser[] = "user-token-0123456789abcdef";
constexpr char kWorker[] = "worker-token-0123456789abcdef";

class DatasetGrpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = CoordinatorServer::Start(
        &core_, &clock_,
        {.listen = "127.0.0.1:0",
         .tokens = {.user = kUser, .worker = kWorker}});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    auto channel = grpc::CreateChannel(server_->address(),
                                       grpc::InsecureChannelCredentials());
    workers_ = v1::WorkerService::NewStub(channel);
    sweeps_ = v1::SweepService::NewStub(channel);
    cluster_ = v1::ClusterService::NewStub(channel);
  }
  void TearDown() override { server_->Shutdown(absl::Seconds(5)); }
  static void Auth(grpc::ClientContext& ctx, const char* token) {
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
  }
  grpc::Status Submit(v1::SubmitSweepResponse* out) {
    grpc::ClientContext ctx;
    Auth(ctx, kUser);
    v1::SubmitSweepRequest request;
    *request.mutable_config() = SmallConfig();
    return sweeps_->SubmitSweep(&ctx, request, out);
  }

  RealClock clock_;
  FakeTrialStore store_;
  Core core_{&store_, &clock_, CoreOptions{}};
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::WorkerService::Stub> workers_;
  std::unique_ptr<v1::SweepService::Stub> sweeps_;
  std::unique_ptr<v1::ClusterService::Stub> cluster_;
};

TEST_F(DatasetGrpcTest, HeldWithNoWorkerThenRefusedOnceWorkersLackTheData) {
  v1::SubmitSweepResponse submitted;
  ASSERT_TRUE(Submit(&submitted).ok());
  {
    grpc::ClientContext ctx;
    Auth(ctx, kUser);
    v1::GetSweepRequest get;
    get.set_sweep_id(submitted.sweep_id());
    v1::Sweep sweep;
    ASSERT_TRUE(sweeps_->GetSweep(&ctx, get, &sweep).ok());
    EXPECT_THAT(sweep.pending_reason(),
                HasSubstr("waiting for a worker that holds dataset "
                          "kjv-bpe512"));
  }
  {
    grpc::ClientContext ctx;
    Auth(ctx, kWorker);
    v1::RegisterWorkerRequest request;
    request.set_worker_id("wk-grpc");
    request.mutable_resources()->set_cpu_slots(1);
    request.set_reports_datasets(true);
    *request.add_datasets() = Dataset("tiny", 256, 161'949);
    v1::RegisterWorkerResponse response;
    const grpc::Status s = workers_->RegisterWorker(&ctx, request, &response);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }
  {
    grpc::ClientContext ctx;
    Auth(ctx, kUser);
    v1::ListWorkersResponse list;
    ASSERT_TRUE(cluster_->ListWorkers(&ctx, {}, &list).ok());
    ASSERT_EQ(list.workers_size(), 1);
    ASSERT_EQ(list.workers(0).datasets_size(), 1);
    EXPECT_EQ(list.workers(0).datasets(0).name(), "tiny");
    EXPECT_EQ(list.workers(0).datasets(0).train_tokens(), 161'949u);
  }
  v1::SweepConfig other = SmallConfig();
  other.set_name("another");  // a new sweep: checked again
  grpc::ClientContext ctx;
  Auth(ctx, kUser);
  v1::SubmitSweepRequest request;
  *request.mutable_config() = other;
  v1::SubmitSweepResponse response;
  const grpc::Status s = sweeps_->SubmitSweep(&ctx, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(),
              AllOf(HasSubstr("data.dataset = \"kjv-bpe512\""),
                    HasSubstr("wk-grpc holds tiny (vocab 256)")));
}

TEST_F(DatasetGrpcTest, ABadDatasetReportIsRefusedAtRegister) {
  grpc::ClientContext ctx;
  Auth(ctx, kWorker);
  v1::RegisterWorkerRequest request;
  request.mutable_resources()->set_cpu_slots(1);
  *request.add_datasets() = Dataset("../etc", 256);
  v1::RegisterWorkerResponse response;
  const grpc::Status s = workers_->RegisterWorker(&ctx, request, &response);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("datasets[0].name = \"../etc\""));
}

}  // namespace
}  // namespace isoflop::coordinator
