// GenerationRelay (coordinator/service/generation_relay.h) behind the real
// gRPC server on loopback: a test client plays the worker's ServeSamples
// stream.
#include "coordinator/service/generation_relay.h"

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "coordinator/service/core.h"
#include "coordinator/service/server.h"
#include "coordinator/store/fake_trial_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "isoflop/v1/service.grpc.pb.h"

namespace isoflop::coordinator {
namespace {

using ::testing::HasSubstr;
using Stream = grpc::ClientReaderWriter<v1::SampleUpdate, v1::SampleJob>;

constexpr char kWorkerToken[] = "worker-token-0123456789abcdef";

class GenerationRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    core_ = std::make_unique<Core>(&store_, &clock_, CoreOptions{});
    auto server = CoordinatorServer::Start(
        core_.get(), &clock_,
        {.listen = "127.0.0.1:0",
         .tokens = {.user = "user-token-0123456789abcdef",
                    .worker = kWorkerToken},
         .generation_relay = &relay_});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    stub_ = v1::WorkerService::NewStub(grpc::CreateChannel(
        server_->address(), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override { server_->Shutdown(absl::Seconds(5)); }

  // Opens a stream as worker `id` and waits until the relay has it.
  std::unique_ptr<Stream> Connect(grpc::ClientContext* ctx,
                                  const std::string& id) {
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", kWorkerToken));
    std::unique_ptr<Stream> s = stub_->ServeSamples(ctx);
    v1::SampleUpdate hello;
    hello.set_worker_id(id);
    EXPECT_TRUE(s->Write(hello));
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!relay_.Connected(id) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    EXPECT_TRUE(relay_.Connected(id));
    return s;
  }
  static v1::SampleJob Job() {
    v1::SampleJob job;
    job.set_trial_id("tr-1");
    job.mutable_generate()->set_request_json(R"({"prompt_ids": [1]})");
    return job;
  }
  static v1::SampleUpdate Events(const std::string& job_id,
                                 const std::vector<std::string>& names) {
    v1::SampleUpdate u;
    for (const std::string& n : names) {
      v1::SampleEvent* e = u.add_events();
      e->set_job_id(job_id);
      e->set_event(n);
      e->set_data(absl::StrCat("{\"", n, "\":1}"));
    }
    return u;
  }
  // The job's events until it ends (at most 30 s).
  static std::vector<std::string> Drain(RelayedJob& job) {
    std::vector<v1::SampleEvent> events;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (job.Next(absl::Seconds(1), &events) && absl::Now() < deadline) {
    }
    std::vector<std::string> names;
    for (const auto& e : events) names.push_back(e.event());
    return names;
  }

  RealClock clock_;
  FakeTrialStore store_;
  std::unique_ptr<Core> core_;
  GenerationRelay relay_{{.max_concurrent = 1}};
  std::unique_ptr<CoordinatorServer> server_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
};

TEST_F(GenerationRelayTest, AWorkerWithoutAStreamIsUnavailableNamingIt) {
  absl::StatusOr<std::unique_ptr<RelayedJob>> job =
      relay_.Submit("wk-away", Job());
  EXPECT_TRUE(absl::IsUnavailable(job.status())) << job.status();
  EXPECT_THAT(job.status().message(),
              HasSubstr("worker wk-away keeps this trial's model.bin but has "
                        "no live connection"));
}

TEST_F(GenerationRelayTest, RelaysTheJobAndItsEventsInOrder) {
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> s = Connect(&ctx, "wk-1");
  auto job = relay_.Submit("wk-1", Job());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(relay_.running(), 1);
  v1::SampleJob got;
  ASSERT_TRUE(s->Read(&got));
  EXPECT_EQ(got.job_id(), (*job)->job_id());
  EXPECT_EQ(got.trial_id(), "tr-1");
  EXPECT_EQ(got.generate().request_json(), R"({"prompt_ids": [1]})");
  ASSERT_TRUE(s->Write(Events(got.job_id(), {"start", "token"})));
  ASSERT_TRUE(s->Write(Events(got.job_id(), {"token", "done"})));
  EXPECT_EQ(Drain(**job),
            (std::vector<std::string>{"start", "token", "token", "done"}));
  EXPECT_EQ(relay_.running(), 0);
  s->WritesDone();
}

TEST_F(GenerationRelayTest, AGoneClientCancelsAndTheSlotFreesAtEnded) {
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> s = Connect(&ctx, "wk-1");
  auto job = relay_.Submit("wk-1", Job());
  ASSERT_TRUE(job.ok()) << job.status();
  v1::SampleJob got;
  ASSERT_TRUE(s->Read(&got));
  ASSERT_TRUE(s->Write(Events(got.job_id(), {"start"})));
  std::vector<v1::SampleEvent> first;
  (*job)->Next(absl::Seconds(30), &first);
  ASSERT_EQ(first.size(), 1u);
  job->reset();  // the HTTP client went away
  v1::SampleJob cancel;
  ASSERT_TRUE(s->Read(&cancel));
  EXPECT_TRUE(cancel.cancel());
  EXPECT_EQ(cancel.job_id(), got.job_id());
  // The slot is held until the worker says its trainer is gone.
  EXPECT_EQ(relay_.running(), 1);
  EXPECT_TRUE(absl::IsResourceExhausted(relay_.Submit("wk-1", Job()).status()));
  ASSERT_TRUE(s->Write(Events(got.job_id(), {"ended"})));
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (relay_.running() != 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(relay_.running(), 0);
  s->WritesDone();
}

TEST_F(GenerationRelayTest, AClosedStreamEndsItsJobsNamingTheWorker) {
  grpc::ClientContext ctx;
  std::unique_ptr<Stream> s = Connect(&ctx, "wk-1");
  auto job = relay_.Submit("wk-1", Job());
  ASSERT_TRUE(job.ok()) << job.status();
  v1::SampleJob got;
  ASSERT_TRUE(s->Read(&got));
  ctx.TryCancel();  // the worker went away
  std::vector<v1::SampleEvent> events;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while ((*job)->Next(absl::Seconds(1), &events) && absl::Now() < deadline) {
  }
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event(), "refused");
  EXPECT_EQ(events[0].code(), static_cast<int>(absl::StatusCode::kUnavailable));
  EXPECT_THAT(events[0].data(), HasSubstr("worker wk-1: its connection"));
  EXPECT_EQ(relay_.running(), 0);
  EXPECT_FALSE(relay_.Connected("wk-1"));
}

TEST_F(GenerationRelayTest, AStreamWithoutTheWorkerTokenIsRefused) {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer user-token-0123456789abcdef");
  std::unique_ptr<Stream> s = stub_->ServeSamples(&ctx);
  v1::SampleUpdate hello;
  hello.set_worker_id("wk-1");
  s->Write(hello);
  v1::SampleJob job;
  EXPECT_FALSE(s->Read(&job));
  const grpc::Status status = s->Finish();
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
              status.error_code() == grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  EXPECT_FALSE(relay_.Connected("wk-1"));
}

}  // namespace
}  // namespace isoflop::coordinator
