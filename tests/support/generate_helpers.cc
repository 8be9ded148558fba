#include "tests/support/generate_helpers.h"

#include <gtest/gtest.h>

namespace mcserve::testing {
namespace {

void Sampling(v1::GenerateRequest& r, uint32_t max_tokens, int64_t seed) {
  v1::SamplingParams* sp = r.mutable_sampling_params();
  sp->set_max_tokens(max_tokens);
  if (seed >= 0) {
    sp->set_seed(static_cast<uint64_t>(seed));
    sp->set_temperature(1.0f);
  } else {
    sp->set_temperature(0.0f);
  }
}

}  // namespace

Completion Collect(client::Client& c, const v1::GenerateRequest& req,
                   const client::CallOptions& opts) {
  Completion out;
  out.status = c.Generate(
      req,
      [&out](const v1::GenerateResponse& r) {
        ++out.responses;
        out.tokens.insert(out.tokens.end(), r.token_ids().begin(), r.token_ids().end());
        out.text += r.text();
        out.logprobs.insert(out.logprobs.end(), r.logprobs().begin(), r.logprobs().end());
        if (r.prompt_logprobs_size() > 0) ++out.prompt_logprob_messages;
        out.prompt_logprobs.insert(out.prompt_logprobs.end(), r.prompt_logprobs().begin(),
                                   r.prompt_logprobs().end());
        out.request_id = r.request_id();
        out.last = r;
      },
      opts);
  return out;
}

v1::GenerateRequest TextRequest(const std::string& prompt, uint32_t max_tokens,
                                const std::string& session_id, int64_t seed) {
  v1::GenerateRequest r;
  r.set_text(prompt);
  r.set_session_id(session_id);
  Sampling(r, max_tokens, seed);
  return r;
}

v1::GenerateRequest LongRequest(const std::string& prompt, uint32_t max_tokens,
                                const std::string& session_id) {
  v1::GenerateRequest r = TextRequest(prompt, max_tokens, session_id);
  r.mutable_sampling_params()->set_ignore_eos(true);
  return r;
}

v1::GenerateRequest TokenRequest(const std::vector<uint32_t>& ids, uint32_t max_tokens,
                                 const std::string& session_id, int64_t seed) {
  v1::GenerateRequest r;
  for (uint32_t id : ids) r.mutable_token_ids()->add_ids(id);
  r.set_session_id(session_id);
  Sampling(r, max_tokens, seed);
  return r;
}

RunningStream::RunningStream(client::Client& c, v1::GenerateRequest request)
    : client_(c), request_id_(request.request_id()) {
  if (request_id_.empty()) ADD_FAILURE() << "a RunningStream needs a request_id to Abort it by";
  thread_ = std::thread([this, request = std::move(request)] {
    absl::Status status = client_.Generate(
        request,
        [this](const v1::GenerateResponse& r) {
          {
            std::lock_guard<std::mutex> lock(mu_);
            got_.tokens.insert(got_.tokens.end(), r.token_ids().begin(), r.token_ids().end());
            ++got_.responses;
            got_.last = r;
          }
          if (r.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) ended_ = true;
          if (!started_.HasBeenNotified()) {
            started_ok_ = true;
            started_.Notify();
          }
        },
        {},
        [this](grpc::ClientContext* ctx) {
          std::lock_guard<std::mutex> lock(mu_);
          context_ = ctx;
        });
    std::lock_guard<std::mutex> lock(mu_);
    context_ = nullptr;
    got_.status = std::move(status);
    returned_ = true;
    if (!started_.HasBeenNotified()) started_.Notify();  // it failed before a message
  });
  started_.WaitForNotification();
}

RunningStream::~RunningStream() {
  if (!thread_.joinable()) return;
  Cancel();
  thread_.join();
}

void RunningStream::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  if (context_ != nullptr) context_->TryCancel();
}

Completion RunningStream::Stop(client::Client* via) {
  if (thread_.joinable()) {
    if (!ended_ && !returned_) {
      const absl::Status aborted = (via != nullptr ? *via : client_).Abort(request_id_);
      if (!aborted.ok() && !ended_) Cancel();
    }
    thread_.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  return got_;
}

}  // namespace mcserve::testing
