#include "server/model/row_logprobs.h"

#include <algorithm>

namespace mcserve::model {

std::vector<TokenLogprobs> RowLogprobs(const at::Tensor& logits, absl::Span<const int32_t> chosen,
                                       int32_t top_n) {
  const int64_t n = logits.size(0);
  const int64_t vocab = logits.size(1);
  std::vector<TokenLogprobs> out(static_cast<size_t>(n));
  if (n == 0) return out;
  const at::Tensor log_z = at::logsumexp(logits.to(at::kDouble), 1).contiguous();  // [n]
  std::vector<int64_t> ids(chosen.begin(), chosen.end());
  const at::Tensor picked =
      logits.gather(1, at::tensor(ids, at::kLong).unsqueeze(1)).squeeze(1).to(at::kDouble);
  const at::Tensor lp = (picked - log_z).to(at::kFloat).contiguous();
  const float* lp_data = lp.data_ptr<float>();
  for (int64_t j = 0; j < n; ++j) out[j].logprob = lp_data[j];
  const int64_t k = std::min<int64_t>(top_n, vocab);
  if (k <= 0) return out;
  auto [values, indices] = logits.topk(k, 1, /*largest=*/true, /*sorted=*/true);
  const at::Tensor top_lp =
      (values.to(at::kDouble) - log_z.unsqueeze(1)).to(at::kFloat).contiguous();
  const at::Tensor top_id = indices.contiguous();
  const float* v = top_lp.data_ptr<float>();
  const int64_t* id = top_id.data_ptr<int64_t>();
  for (int64_t j = 0; j < n; ++j) {
    out[j].top.reserve(static_cast<size_t>(k));
    for (int64_t t = 0; t < k; ++t) {
      out[j].top.emplace_back(static_cast<int32_t>(id[j * k + t]), v[j * k + t]);
    }
  }
  return out;
}

}  // namespace mcserve::model
