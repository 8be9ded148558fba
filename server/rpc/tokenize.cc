#include "server/rpc/tokenize.h"

#include "server/util/status_macros.h"

namespace mcserve::rpc {

absl::Status Tokenize(const tokenizer::Tokenizer& tok, const v1::TokenizeRequest& req,
                      v1::TokenizeResponse& out) {
  ASSIGN_OR_RETURN(const std::vector<int32_t> ids, tok.Encode(req.text()));
  out.mutable_ids()->Reserve(static_cast<int>(ids.size()) + 1);
  if (req.add_bos()) out.add_ids(tok.bos_id());
  for (int32_t id : ids) out.add_ids(id);
  return absl::OkStatus();
}

absl::Status Detokenize(const tokenizer::Tokenizer& tok, const RequestLimits& limits,
                        const v1::DetokenizeRequest& req, v1::DetokenizeResponse& out) {
  ASSIGN_OR_RETURN(const std::vector<int32_t> ids, ValidateTokenIds(req.ids(), limits, "ids"));
  ASSIGN_OR_RETURN(*out.mutable_text(), tok.Decode(ids));
  return absl::OkStatus();
}

void DescribeTokenizer(const tokenizer::Tokenizer& tok, v1::TokenizerInfo& out) {
  out.set_kind(std::string(tok.kind()));
  out.set_vocab_size(tok.tokenizer_vocab_size());
  out.set_bos_id(tok.bos_id());
  out.set_eos_id(tok.eos_id());
  out.set_model_path(tok.model_path());
}

}  // namespace mcserve::rpc
