#include "server/model/fla_weights.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"

namespace mcserve::model {
namespace {

std::string Layer(int l, absl::string_view rest) {
  return absl::StrCat("model.layers.", l, ".", rest);
}

}  // namespace

std::string FlaRouterName(int l) { return Layer(l, "attn.u_proj.weight"); }

std::vector<TensorSpec> ExpectedFlaTensors(const ModelConfig& c) {
  const int64_t V = c.vocab_size, D = c.d_model, K = c.key_width(), Vw = c.value_width();
  const int64_t HV = c.state_heads();
  const bool gdn = c.family == ModelFamily::kGatedDeltaNet;
  std::vector<TensorSpec> out;
  out.push_back({"model.embeddings.weight", {V, D}});
  for (int l = 0; l < c.n_layers; ++l) {
    out.push_back({Layer(l, "attn_norm.weight"), {D}});
    out.push_back({Layer(l, "attn.q_proj.weight"), {K, D}});
    out.push_back({Layer(l, "attn.k_proj.weight"), {K, D}});
    out.push_back({Layer(l, "attn.v_proj.weight"), {Vw, D}});
    if (c.fla.conv_size > 0) {
      const int64_t W = c.fla.conv_size;
      out.push_back({Layer(l, "attn.q_conv1d.weight"), {K, 1, W}});
      out.push_back({Layer(l, "attn.k_conv1d.weight"), {K, 1, W}});
      out.push_back({Layer(l, "attn.v_conv1d.weight"), {Vw, 1, W}});
    }
    if (gdn) {
      out.push_back({Layer(l, "attn.a_proj.weight"), {HV, D}});
      out.push_back({Layer(l, "attn.A_log"), {HV}});
      out.push_back({Layer(l, "attn.dt_bias"), {HV}});
    }
    if (gdn || c.fla.use_beta) out.push_back({Layer(l, "attn.b_proj.weight"), {HV, D}});
    if (c.fla.use_gate) out.push_back({Layer(l, "attn.g_proj.weight"), {Vw, D}});
    if (c.HasRouterProj()) out.push_back({FlaRouterName(l), {K, D}});
    out.push_back({Layer(l, "attn.o_norm.weight"), {c.value_dim()}});
    out.push_back({Layer(l, "attn.o_proj.weight"), {D, Vw}});
    out.push_back({Layer(l, "mlp_norm.weight"), {D}});
    out.push_back({Layer(l, "mlp.gate_proj.weight"), {c.d_ff, D}});
    out.push_back({Layer(l, "mlp.up_proj.weight"), {c.d_ff, D}});
    out.push_back({Layer(l, "mlp.down_proj.weight"), {D, c.d_ff}});
  }
  out.push_back({"model.norm.weight", {D}});
  if (!c.tie_embeddings) out.push_back({"lm_head.weight", {V, D}});
  return out;
}

bool IsIgnoredFlaTensor(const ModelConfig& c, const std::string& name) {
  // Transformers ignores a stored lm_head of a tied model too.
  if (c.tie_embeddings && name == "lm_head.weight") return true;
  return !c.HasRouterProj() && absl::StartsWith(name, "model.layers.") &&
         absl::EndsWith(name, ".attn.u_proj.weight");
}

absl::Status LoadFlaWeights(const ModelConfig& c, const FoundTensors& found,
                            const at::Device& device, Weights& w) {
  const bool gdn = c.family == ModelFamily::kGatedDeltaNet;
  try {
    ASSIGN_OR_RETURN(w.embed, TakeTensor(found, "model.embeddings.weight", device));
    for (int l = 0; l < c.n_layers; ++l) {
      LayerWeights lw;
      ASSIGN_OR_RETURN(lw.mixer_norm, TakeTensor(found, Layer(l, "attn_norm.weight"), device));
      std::vector<std::string> names = {"attn.q_proj.weight", "attn.k_proj.weight",
                                        "attn.v_proj.weight"};
      if (c.fla.use_gate) names.push_back("attn.g_proj.weight");
      if (c.HasRouterProj()) names.push_back("attn.u_proj.weight");
      std::vector<at::Tensor> parts;
      for (const std::string& n : names) {
        ASSIGN_OR_RETURN(at::Tensor t, TakeTensor(found, Layer(l, n), device));
        parts.push_back(std::move(t));
      }
      lw.in_proj = at::cat(parts, 0).contiguous();
      parts.clear();
      if (c.fla.conv_size > 0) {
        for (const char* n :
             {"attn.q_conv1d.weight", "attn.k_conv1d.weight", "attn.v_conv1d.weight"}) {
          ASSIGN_OR_RETURN(at::Tensor t, TakeTensor(found, Layer(l, n), device));
          parts.push_back(t.squeeze(1));
        }
        lw.conv = at::cat(parts, 0).contiguous();  // [2K + V, W]
      }
      if (gdn) {
        ASSIGN_OR_RETURN(lw.a_w, TakeTensor(found, Layer(l, "attn.a_proj.weight"), device));
        ASSIGN_OR_RETURN(lw.a_log, TakeTensor(found, Layer(l, "attn.A_log"), device));
        ASSIGN_OR_RETURN(lw.dt_bias, TakeTensor(found, Layer(l, "attn.dt_bias"), device));
      }
      if (gdn || c.fla.use_beta) {
        ASSIGN_OR_RETURN(lw.b_w, TakeTensor(found, Layer(l, "attn.b_proj.weight"), device));
      }
      ASSIGN_OR_RETURN(lw.o_norm, TakeTensor(found, Layer(l, "attn.o_norm.weight"), device));
      ASSIGN_OR_RETURN(lw.o_proj, TakeTensor(found, Layer(l, "attn.o_proj.weight"), device));
      ASSIGN_OR_RETURN(lw.mlp_norm, TakeTensor(found, Layer(l, "mlp_norm.weight"), device));
      ASSIGN_OR_RETURN(at::Tensor gate,
                       TakeTensor(found, Layer(l, "mlp.gate_proj.weight"), device));
      ASSIGN_OR_RETURN(at::Tensor up, TakeTensor(found, Layer(l, "mlp.up_proj.weight"), device));
      lw.gate_up = at::cat({gate, up}, 0).contiguous();
      ASSIGN_OR_RETURN(lw.down, TakeTensor(found, Layer(l, "mlp.down_proj.weight"), device));
      w.layers.push_back(std::move(lw));
    }
    ASSIGN_OR_RETURN(w.norm, TakeTensor(found, "model.norm.weight", device));
    if (c.tie_embeddings) {
      w.lm_head = w.embed;
    } else {
      ASSIGN_OR_RETURN(w.lm_head, TakeTensor(found, "lm_head.weight", device));
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("loading weights: ", e.what()));
  }
  return absl::OkStatus();
}

}  // namespace mcserve::model
