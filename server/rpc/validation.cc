#include "server/rpc/validation.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace mcserve::rpc {
namespace {

absl::Status Invalid(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(field, " ", what));
}

absl::Status ValidateRequestId(const std::string& id, const RequestLimits& limits) {
  if (static_cast<int32_t>(id.size()) > limits.max_id_length) {
    return Invalid("request_id",
                   absl::StrCat("is longer than ", limits.max_id_length, " characters"));
  }
  for (char c : id) {
    if (c < 0x21 || c > 0x7e)
      return Invalid("request_id", "must be printable ASCII without spaces");
  }
  return absl::OkStatus();
}

absl::Status ValidatePenalties(const v1::SamplingParams& sp, const RequestLimits& limits,
                               engine::RequestParams& p) {
  if (sp.has_repetition_penalty()) {
    const float r = sp.repetition_penalty();
    if (!(r > 0.0f && r <= 100.0f)) {
      return Invalid("sampling_params.repetition_penalty",
                     absl::StrCat("must be in (0, 100], got ", r));
    }
    p.repetition_penalty = r;
  }
  for (const auto& [field, value] : {std::pair{"presence_penalty", sp.presence_penalty()},
                                     std::pair{"frequency_penalty", sp.frequency_penalty()}}) {
    if (!(value >= -2.0f && value <= 2.0f)) {
      return Invalid(absl::StrCat("sampling_params.", field),
                     absl::StrCat("must be in [-2, 2], got ", value));
    }
  }
  p.presence_penalty = sp.presence_penalty();
  p.frequency_penalty = sp.frequency_penalty();
  if (sp.min_tokens() > static_cast<uint32_t>(p.max_tokens)) {
    return Invalid("sampling_params.min_tokens",
                   absl::StrCat("is ", sp.min_tokens(), ", above max_tokens (", p.max_tokens, ")"));
  }
  p.min_tokens = static_cast<int32_t>(sp.min_tokens());
  if (sp.logit_bias_size() > limits.max_logit_bias) {
    return Invalid("sampling_params.logit_bias",
                   absl::StrCat("has ", sp.logit_bias_size(), " entries; at most ",
                                limits.max_logit_bias, " allowed"));
  }
  for (const auto& [id, bias] : sp.logit_bias()) {
    const std::string field = absl::StrCat("sampling_params.logit_bias[", id, "]");
    if (id >= static_cast<uint32_t>(limits.vocab_size)) {
      return Invalid(field,
                     absl::StrCat("names a token id not below vocab_size ", limits.vocab_size));
    }
    if (!(bias >= -100.0f && bias <= 100.0f)) {
      return Invalid(field, absl::StrCat("must be in [-100, 100], got ", bias));
    }
    p.logit_bias.emplace_back(static_cast<int32_t>(id), bias);
  }
  std::sort(p.logit_bias.begin(), p.logit_bias.end());
  p.include_stop_str_in_output = sp.include_stop_str_in_output();
  return absl::OkStatus();
}

absl::Status ValidateSampling(const v1::SamplingParams& sp, const RequestLimits& limits,
                              engine::RequestParams& p) {
  if (sp.has_temperature()) {
    const float t = sp.temperature();
    if (!(t >= 0.0f && t <= 100.0f)) {
      return Invalid("sampling_params.temperature", absl::StrCat("must be in [0, 100], got ", t));
    }
    p.temperature = t;
  }
  if (sp.has_top_p()) {
    const float v = sp.top_p();
    if (!(v > 0.0f && v <= 1.0f)) {
      return Invalid("sampling_params.top_p", absl::StrCat("must be in (0, 1], got ", v));
    }
    p.top_p = v;
  }
  if (sp.top_k() > static_cast<uint32_t>(limits.vocab_size)) {
    return Invalid("sampling_params.top_k", absl::StrCat("must be at most vocab_size (",
                                                         limits.vocab_size, "), got ", sp.top_k()));
  }
  p.top_k = static_cast<int32_t>(sp.top_k());
  p.max_tokens = limits.default_max_tokens;
  if (sp.has_max_tokens()) {
    if (sp.max_tokens() > static_cast<uint32_t>(limits.max_tokens_limit)) {
      return Invalid("sampling_params.max_tokens",
                     absl::StrCat("is ", sp.max_tokens(), "; this server allows at most ",
                                  limits.max_tokens_limit, " (--max_tokens_limit)"));
    }
    p.max_tokens = static_cast<int32_t>(sp.max_tokens());
  }
  if (sp.stop_size() > limits.max_stop_strings) {
    return Invalid("sampling_params.stop",
                   absl::StrCat("has ", sp.stop_size(), " strings; at most ",
                                limits.max_stop_strings, " allowed"));
  }
  for (int i = 0; i < sp.stop_size(); ++i) {
    const std::string& s = sp.stop(i);
    if (s.empty() || static_cast<int32_t>(s.size()) > limits.max_stop_bytes) {
      return Invalid(absl::StrCat("sampling_params.stop[", i, "]"),
                     absl::StrCat("must be 1 to ", limits.max_stop_bytes, " bytes"));
    }
    p.stop.push_back(s);
  }
  for (int i = 0; i < sp.stop_token_ids_size(); ++i) {
    if (sp.stop_token_ids(i) >= static_cast<uint32_t>(limits.vocab_size)) {
      return Invalid(
          absl::StrCat("sampling_params.stop_token_ids[", i, "]"),
          absl::StrCat("= ", sp.stop_token_ids(i), " is not below vocab_size ", limits.vocab_size));
    }
    p.stop_token_ids.push_back(static_cast<int32_t>(sp.stop_token_ids(i)));
  }
  p.ignore_eos = sp.ignore_eos();
  return ValidatePenalties(sp, limits, p);
}

}  // namespace

absl::Status ValidateSessionId(const std::string& id, const RequestLimits& limits,
                               absl::string_view field) {
  if (id.empty() || static_cast<int32_t>(id.size()) > limits.max_id_length) {
    return Invalid(field, absl::StrCat("must be 1 to ", limits.max_id_length, " characters"));
  }
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return Invalid(field, "may contain only letters, digits and . _ : -");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> ValidateTokenIds(
    const google::protobuf::RepeatedField<uint32_t>& ids, const RequestLimits& limits,
    absl::string_view field) {
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (int i = 0; i < ids.size(); ++i) {
    if (ids[i] >= static_cast<uint32_t>(limits.vocab_size)) {
      return Invalid(absl::StrCat(field, "[", i, "]"),
                     absl::StrCat("= ", ids[i], " is not below vocab_size ", limits.vocab_size));
    }
    out.push_back(static_cast<int32_t>(ids[i]));
  }
  return out;
}

absl::StatusOr<engine::NewRequest> ValidateGenerate(const v1::GenerateRequest& req,
                                                    const RequestLimits& limits,
                                                    const tokenizer::Tokenizer& tok,
                                                    uint64_t random_seed) {
  engine::NewRequest out;
  RETURN_IF_ERROR(ValidateRequestId(req.request_id(), limits));
  out.request_id = req.request_id();
  if (!req.session_id().empty()) {
    RETURN_IF_ERROR(ValidateSessionId(req.session_id(), limits, "session_id"));
  }
  out.session_id = req.session_id();
  if (req.has_token_ids()) {
    ASSIGN_OR_RETURN(out.prompt, ValidateTokenIds(req.token_ids().ids(), limits, "token_ids.ids"));
  } else {
    ASSIGN_OR_RETURN(out.prompt, tok.Encode(req.text()));
  }
  if (static_cast<int64_t>(out.prompt.size()) > limits.max_prompt_tokens) {
    return Invalid("prompt", absl::StrCat("has ", out.prompt.size(), " tokens; the limit is ",
                                          limits.max_prompt_tokens, " (--max_prompt_tokens)"));
  }
  RETURN_IF_ERROR(ValidateSampling(req.sampling_params(), limits, out.params));
  out.params.seed = req.sampling_params().has_seed() ? req.sampling_params().seed() : random_seed;
  if (req.top_logprobs() > static_cast<uint32_t>(limits.max_top_logprobs)) {
    return Invalid("top_logprobs", absl::StrCat("must be at most ", limits.max_top_logprobs,
                                                ", got ", req.top_logprobs()));
  }
  if (req.top_logprobs() > 0 && !req.return_logprobs()) {
    return Invalid("top_logprobs", "needs return_logprobs = true");
  }
  out.params.return_logprobs = req.return_logprobs();
  out.params.top_logprobs = static_cast<int32_t>(req.top_logprobs());
  if (req.has_prompt_logprobs()) {
    if (req.prompt_logprobs() > static_cast<uint32_t>(limits.max_top_logprobs)) {
      return Invalid("prompt_logprobs", absl::StrCat("must be at most ", limits.max_top_logprobs,
                                                     ", got ", req.prompt_logprobs()));
    }
    out.params.prompt_logprobs = static_cast<int32_t>(req.prompt_logprobs());
  }
  return out;
}

}  // namespace mcserve::rpc
