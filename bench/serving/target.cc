#include "bench/serving/target.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "client/mcserve_client.h"
#include "server/engine/engine.h"
#include "server/model/mc_model.h"
#include "server/server_options.h"
#include "server/util/clock.h"

namespace mcserve::bench {
namespace {

class Grpc : public Target {
 public:
  Grpc(const std::string& addr, const std::string& token) : client_(addr) {
    client_.set_bearer_token(token);
  }
  absl::StatusOr<std::pair<int32_t, int32_t>> PromptIds() override {
    absl::StatusOr<v1::ModelInfo> info = client_.GetModelInfo();
    if (!info.ok()) return info.status();
    return OrdinaryIds(static_cast<int32_t>(info->vocab_size()),
                       static_cast<int32_t>(info->bos_id()), static_cast<int32_t>(info->eos_id()));
  }
  absl::StatusOr<std::string> CreateSession(const std::string& id) override {
    absl::StatusOr<v1::Session> s = client_.CreateSession(id);
    if (!s.ok()) return s.status();
    return s->session_id();
  }
  void DeleteSession(const std::string& id) override { (void)client_.DeleteSession(id); }
  absl::Status Generate(const Turn& turn, const std::string& session, uint64_t seed,
                        absl::Duration timeout,
                        const std::function<void(int)>& on_tokens) override {
    v1::GenerateRequest req;
    for (uint32_t id : turn.prompt) req.mutable_token_ids()->add_ids(id);
    req.set_session_id(session);
    v1::SamplingParams* sp = req.mutable_sampling_params();
    sp->set_max_tokens(static_cast<uint32_t>(turn.output_tokens));
    sp->set_ignore_eos(true);
    sp->set_temperature(1.0f);
    sp->set_seed(seed);
    client::CallOptions opts;
    opts.timeout = timeout;
    return client_.Generate(
        req,
        [&on_tokens](const v1::GenerateResponse& m) {
          if (m.token_ids_size() > 0) on_tokens(m.token_ids_size());
        },
        opts);
  }

 private:
  client::Client client_;
};

// The engine's updates for one request, handed to the waiting thread.
class Channel : public engine::StreamChannel {
 public:
  explicit Channel(const std::function<void(int)>* on_tokens) : on_tokens_(on_tokens) {}
  void Send(engine::GenerateUpdate u) override {
    if (!u.tokens.empty()) (*on_tokens_)(static_cast<int>(u.tokens.size()));
    if (u.finished || !u.status.ok()) {
      status_ = u.status;
      done_.Notify();
    }
  }
  absl::Status Wait() {
    done_.WaitForNotification();
    return status_;
  }

 private:
  const std::function<void(int)>* const on_tokens_;
  absl::Status status_;
  absl::Notification done_;
};

class InProcess : public Target {
 public:
  explicit InProcess(std::unique_ptr<engine::Engine> engine) : engine_(std::move(engine)) {}
  absl::StatusOr<std::pair<int32_t, int32_t>> PromptIds() override {
    return OrdinaryIds(engine_->model().config().vocab_size, engine_->tokenizer().bos_id(),
                       engine_->tokenizer().eos_id());
  }
  absl::StatusOr<std::string> CreateSession(const std::string& id) override {
    absl::Notification done;
    absl::StatusOr<engine::SessionInfo> out = absl::UnknownError("no answer");
    engine_->CreateSession(id, [&](absl::StatusOr<engine::SessionInfo> r) {
      out = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    if (!out.ok()) return out.status();
    return out->id;
  }
  void DeleteSession(const std::string& id) override {
    absl::Notification done;
    engine_->DeleteSession(id, [&](absl::Status) { done.Notify(); });
    done.WaitForNotification();
  }
  absl::Status Generate(const Turn& turn, const std::string& session, uint64_t seed, absl::Duration,
                        const std::function<void(int)>& on_tokens) override {
    engine::NewRequest r;
    r.request_id = absl::StrCat("bench-", next_id_.fetch_add(1));
    r.session_id = session;
    r.prompt.assign(turn.prompt.begin(), turn.prompt.end());
    r.params.max_tokens = turn.output_tokens;
    r.params.ignore_eos = true;
    r.params.seed = seed;
    auto channel = std::make_shared<Channel>(&on_tokens);
    r.channel = channel;
    engine_->Submit(std::move(r));
    return channel->Wait();
  }

 private:
  std::unique_ptr<engine::Engine> engine_;
  std::atomic<int64_t> next_id_{0};
};

}  // namespace

std::unique_ptr<Target> GrpcTarget(const std::string& addr, const std::string& token) {
  return std::make_unique<Grpc>(addr, token);
}

absl::StatusOr<std::unique_ptr<Target>> InProcessTarget() {
  absl::StatusOr<ServerOptions> opts = ServerOptionsFromFlags();
  if (!opts.ok()) return opts.status();
  absl::StatusOr<std::unique_ptr<model::McModel>> model =
      model::McModel::Load(opts->model_dir, opts->model);
  if (!model.ok()) return model.status();
  absl::StatusOr<std::unique_ptr<engine::Engine>> engine =
      engine::Engine::Create(*std::move(model), opts->engine, Clock::Real());
  if (!engine.ok()) return engine.status();
  return std::unique_ptr<Target>(new InProcess(*std::move(engine)));
}

}  // namespace mcserve::bench
