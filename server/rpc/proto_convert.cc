#include "server/rpc/proto_convert.h"

namespace mcserve::rpc {

v1::FinishReason ToProto(engine::FinishReason r) {
  switch (r) {
    case engine::FinishReason::kNone:
      return v1::FINISH_REASON_UNSPECIFIED;
    case engine::FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case engine::FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case engine::FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
    case engine::FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case engine::FinishReason::kAborted:
      return v1::FINISH_REASON_ABORTED;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

namespace {

void ToProto(const engine::TokenOut& t, v1::TokenLogprob& lp) {
  lp.set_token_id(static_cast<uint32_t>(t.id));
  lp.set_logprob(t.logprob);
  for (const auto& [id, value] : t.top) {
    v1::TopLogprob* top = lp.add_top();
    top->set_token_id(static_cast<uint32_t>(id));
    top->set_logprob(value);
  }
}

}  // namespace

void AppendUpdate(const engine::GenerateUpdate& u, v1::GenerateResponse& out) {
  for (const engine::TokenOut& t : u.prompt_logprobs) ToProto(t, *out.add_prompt_logprobs());
  for (const engine::TokenOut& t : u.tokens) {
    out.add_token_ids(static_cast<uint32_t>(t.id));
    if (t.has_logprob) ToProto(t, *out.add_logprobs());
  }
  out.mutable_text()->append(u.text);
  if (!u.finished) return;
  out.set_finish_reason(ToProto(u.reason));
  if (u.matched_stop_str) out.set_matched_stop_str(*u.matched_stop_str);
  if (u.matched_token_id) out.set_matched_token_id(static_cast<uint32_t>(*u.matched_token_id));
  v1::Usage* usage = out.mutable_usage();
  usage->set_prompt_tokens(static_cast<uint32_t>(u.usage.prompt_tokens));
  usage->set_completion_tokens(static_cast<uint32_t>(u.usage.completion_tokens));
  usage->set_session_tokens(static_cast<uint64_t>(u.usage.session_tokens));
  usage->set_checkpoints(static_cast<uint32_t>(u.usage.checkpoints));
  usage->set_cached_prompt_tokens(static_cast<uint32_t>(u.usage.cached_prompt_tokens));
}

void ToProto(const engine::SessionInfo& info, v1::Session& out) {
  out.set_session_id(info.id);
  out.set_num_tokens(static_cast<uint64_t>(info.num_tokens));
  out.set_num_checkpoints(static_cast<uint32_t>(info.num_checkpoints));
  out.set_checkpoint_bytes(static_cast<uint64_t>(info.checkpoint_bytes));
  out.set_state_bytes(static_cast<uint64_t>(info.state_bytes));
  out.set_busy(info.busy);
  out.set_checkpoints_on_device(static_cast<uint32_t>(info.checkpoints_on_device));
  out.set_checkpoints_on_host(static_cast<uint32_t>(info.checkpoints_on_host));
  out.set_checkpoints_offloaded(static_cast<uint64_t>(info.eviction.offloaded));
  out.set_checkpoints_fetched(static_cast<uint64_t>(info.eviction.fetched));
  out.set_checkpoints_dropped(static_cast<uint64_t>(info.eviction.dropped));
  out.set_checkpoints_merged(static_cast<uint64_t>(info.eviction.merged));
  out.set_lossy(info.eviction.lossy);
  out.set_last_used_unix_ms(absl::ToUnixMillis(info.last_used));
}

}  // namespace mcserve::rpc
