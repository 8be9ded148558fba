#include "tests/support/parity_case.h"

#include "absl/strings/str_cat.h"
#include "server/model/safetensors.h"
#include "tests/support/test_models.h"

namespace mcserve::testing {
namespace {

// Small integers are stored as F32, exactly.
std::vector<int32_t> Ints(const model::StTensor& t) {
  std::vector<int32_t> out;
  for (float f : model::StToFloat(t)) out.push_back(static_cast<int32_t>(f));
  return out;
}

}  // namespace

absl::StatusOr<ParityCase> ReadParityCase(const std::string& dir) {
  auto f = model::SafetensorsFile::Open(dir + "/expected.safetensors");
  if (!f.ok()) return f.status();
  const auto& t = (*f)->tensors();
  for (const char* name : {"tokens", "splits", "modes", "logits"}) {
    if (!t.contains(name)) return absl::NotFoundError(absl::StrCat(dir, ": no ", name));
  }
  ParityCase c;
  c.tokens = Ints(t.at("tokens"));
  c.splits = Ints(t.at("splits"));
  c.modes = Ints(t.at("modes"));
  const model::StTensor& l = t.at("logits");
  c.logits = at::tensor(model::StToFloat(l)).reshape({l.shape[0], l.shape[1]});
  return c;
}

at::Tensor RunParityCase(model::McModel* m, const ParityCase& c) {
  SessionDriver session(m);
  std::vector<at::Tensor> out;
  size_t at = 0;
  for (size_t r = 0; r < c.splits.size(); ++r) {
    const std::vector<int32_t> part(c.tokens.begin() + at, c.tokens.begin() + at + c.splits[r]);
    out.push_back(c.modes[r] == 1 ? session.PrefillAll(part) : session.DecodeEach(part));
    at += c.splits[r];
  }
  return at::cat(out);
}

}  // namespace mcserve::testing
