#include "server/model/weights.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/model/deep_memory.h"
#include "server/model/fla_weights.h"
#include "server/util/status_macros.h"

namespace mcserve::model {
namespace {

std::string Layer(int l, absl::string_view rest) { return absl::StrCat("layers.", l, ".", rest); }

std::string ShapeStr(const std::vector<int64_t>& s) {
  return absl::StrCat("[", absl::StrJoin(s, ", "), "]");
}

absl::StatusOr<at::Tensor> Take(const FoundTensors& found, const std::string& name,
                                const at::Device& device) {
  return TakeTensor(found, name, device);
}

}  // namespace

absl::StatusOr<at::Tensor> TakeTensor(const FoundTensors& found, const std::string& name,
                                      const at::Device& device) {
  auto it = found.find(name);
  if (it == found.end()) return absl::InternalError(absl::StrCat("tensor '", name, "' not found"));
  const StTensor& t = *it->second;
  std::vector<float> values = StToFloat(t);
  ReleasePages(t);
  at::Tensor cpu = at::from_blob(values.data(), t.shape, at::kFloat).clone();
  return cpu.to(device);
}

std::vector<TensorSpec> ExpectedTensors(const ModelConfig& c) {
  if (c.is_fla()) return ExpectedFlaTensors(c);
  const int64_t V = c.vocab_size, D = c.d_model, I = c.inner_dim(), H = c.n_heads;
  std::vector<TensorSpec> out;
  out.push_back({"embed.weight", {V, D}});
  for (int l = 0; l < c.n_layers; ++l) {
    out.push_back({Layer(l, "mixer_norm.weight"), {D}});
    for (const char* p : {"q_proj", "k_proj", "v_proj", "g_proj"}) {
      out.push_back({Layer(l, absl::StrCat("mixer.", p, ".weight")), {I, D}});
    }
    if (c.HasGate()) out.push_back({Layer(l, "mixer.u_proj.weight"), {I, D}});
    if (c.scalar_decay) {
      out.push_back({Layer(l, "mixer.a_proj.weight"), {H, D}});
      out.push_back({Layer(l, "mixer.a_proj.bias"), {H}});
    }
    if (c.rule == MemoryRule::kDelta) {
      out.push_back({Layer(l, "mixer.b_proj.weight"), {H, D}});
      out.push_back({Layer(l, "mixer.b_proj.bias"), {H}});
    }
    if (c.is_deep()) {
      const int64_t d = c.head_dim, hid = c.deep_hidden();
      out.push_back({Layer(l, "mixer.mem_w1"), {H, d, hid}});
      out.push_back({Layer(l, "mixer.mem_w2"), {H, hid, d}});
      out.push_back({Layer(l, "mixer.mem_ln.weight"), {H, d}});
      if (c.deep.momentum) {
        out.push_back({Layer(l, "mixer.m_proj.weight"), {H, D}});
        out.push_back({Layer(l, "mixer.m_proj.bias"), {H}});
      }
    }
    out.push_back({Layer(l, "mixer.o_norm.weight"), {c.head_dim}});
    out.push_back({Layer(l, "mixer.o_proj.weight"), {D, I}});
    out.push_back({Layer(l, "mlp_norm.weight"), {D}});
    out.push_back({Layer(l, "mlp.gate_proj.weight"), {c.d_ff, D}});
    out.push_back({Layer(l, "mlp.up_proj.weight"), {c.d_ff, D}});
    out.push_back({Layer(l, "mlp.down_proj.weight"), {D, c.d_ff}});
  }
  out.push_back({"norm.weight", {D}});
  if (!c.tie_embeddings) out.push_back({"lm_head.weight", {V, D}});
  return out;
}

absl::StatusOr<Weights> LoadWeights(const ModelConfig& c,
                                    const std::map<std::string, StTensor>& tensors,
                                    const at::Device& device,
                                    const std::function<std::string(const std::string&)>& file_of) {
  auto in = [&file_of](const std::string& name) {
    return file_of ? absl::StrCat(" (in ", file_of(name), ")") : std::string();
  };
  FoundTensors found;
  std::set<StDtype> dtypes;
  Weights w;
  for (const TensorSpec& spec : ExpectedTensors(c)) {
    auto it = tensors.find(spec.name);
    if (it == tensors.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("missing tensor '", spec.name, "' ", ShapeStr(spec.shape)));
    }
    if (it->second.shape != spec.shape) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", spec.name, "'", in(spec.name),
                                                     " has shape ", ShapeStr(it->second.shape),
                                                     ", expected ", ShapeStr(spec.shape)));
    }
    found[spec.name] = &it->second;
    dtypes.insert(it->second.dtype);
    w.num_parameters += static_cast<int64_t>(it->second.nbytes / StDtypeSize(it->second.dtype));
  }
  for (const auto& [name, t] : tensors) {
    if (found.count(name) == 0 && !(c.is_fla() && IsIgnoredFlaTensor(c, name))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected tensor '", name, "'", in(name), ": not used by this config (aggregation ",
          AggregationName(c.aggregation), ", rule ", RuleName(c.rule), ", decay ",
          c.scalar_decay ? "scalar" : "none", ", tie_embeddings ", c.tie_embeddings, ")"));
    }
  }
  w.file_dtype = dtypes.empty() ? StDtype::kF32 : *dtypes.begin();
  if (c.is_fla()) {
    RETURN_IF_ERROR(LoadFlaWeights(c, found, device, w));
    return w;
  }
  try {
    ASSIGN_OR_RETURN(w.embed, Take(found, "embed.weight", device));
    for (int l = 0; l < c.n_layers; ++l) {
      LayerWeights lw;
      ASSIGN_OR_RETURN(lw.mixer_norm, Take(found, Layer(l, "mixer_norm.weight"), device));
      std::vector<at::Tensor> parts;
      std::vector<std::string> names = {"q_proj", "k_proj", "v_proj", "g_proj"};
      if (c.HasGate()) names.push_back("u_proj");
      for (const auto& p : names) {
        ASSIGN_OR_RETURN(at::Tensor t,
                         Take(found, Layer(l, absl::StrCat("mixer.", p, ".weight")), device));
        parts.push_back(t);
      }
      lw.in_proj = at::cat(parts, 0).contiguous();
      if (c.scalar_decay) {
        ASSIGN_OR_RETURN(lw.a_w, Take(found, Layer(l, "mixer.a_proj.weight"), device));
        ASSIGN_OR_RETURN(lw.a_b, Take(found, Layer(l, "mixer.a_proj.bias"), device));
      }
      if (c.rule == MemoryRule::kDelta) {
        ASSIGN_OR_RETURN(lw.b_w, Take(found, Layer(l, "mixer.b_proj.weight"), device));
        ASSIGN_OR_RETURN(lw.b_b, Take(found, Layer(l, "mixer.b_proj.bias"), device));
      }
      if (c.is_deep()) {
        ASSIGN_OR_RETURN(at::Tensor w1, Take(found, Layer(l, "mixer.mem_w1"), device));
        ASSIGN_OR_RETURN(at::Tensor w2, Take(found, Layer(l, "mixer.mem_w2"), device));
        lw.mem_init = PackDeepMemory(w1, w2);
        ASSIGN_OR_RETURN(lw.mem_ln, Take(found, Layer(l, "mixer.mem_ln.weight"), device));
        if (c.deep.momentum) {
          ASSIGN_OR_RETURN(lw.m_w, Take(found, Layer(l, "mixer.m_proj.weight"), device));
          ASSIGN_OR_RETURN(lw.m_b, Take(found, Layer(l, "mixer.m_proj.bias"), device));
        }
      }
      ASSIGN_OR_RETURN(lw.o_norm, Take(found, Layer(l, "mixer.o_norm.weight"), device));
      ASSIGN_OR_RETURN(lw.o_proj, Take(found, Layer(l, "mixer.o_proj.weight"), device));
      ASSIGN_OR_RETURN(lw.mlp_norm, Take(found, Layer(l, "mlp_norm.weight"), device));
      ASSIGN_OR_RETURN(at::Tensor gate, Take(found, Layer(l, "mlp.gate_proj.weight"), device));
      ASSIGN_OR_RETURN(at::Tensor up, Take(found, Layer(l, "mlp.up_proj.weight"), device));
      lw.gate_up = at::cat({gate, up}, 0).contiguous();
      ASSIGN_OR_RETURN(lw.down, Take(found, Layer(l, "mlp.down_proj.weight"), device));
      w.layers.push_back(std::move(lw));
    }
    ASSIGN_OR_RETURN(w.norm, Take(found, "norm.weight", device));
    if (c.tie_embeddings) {
      w.lm_head = w.embed;
    } else {
      ASSIGN_OR_RETURN(w.lm_head, Take(found, "lm_head.weight", device));
    }
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("loading weights: ", e.what()));
  }
  return w;
}

std::vector<StWriteTensor> RandomWeights(const ModelConfig& c, uint64_t seed, StDtype dtype) {
  std::mt19937_64 rng(seed);
  auto normal = [&rng](float stddev) {
    // Box-Muller on our own uniform draw: identical on every platform.
    const double u1 = (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    return static_cast<float>(stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2));
  };
  std::vector<StWriteTensor> out;
  for (const TensorSpec& spec : ExpectedTensors(c)) {
    StWriteTensor t{spec.name, spec.shape, {}, dtype};
    int64_t numel = 1;
    for (int64_t d : spec.shape) numel *= d;
    t.values.resize(numel);
    const bool is_norm = spec.name.find("norm.weight") != std::string::npos;
    const bool is_bias = spec.name.find(".bias") != std::string::npos;
    const bool is_mem = spec.name.find("mixer.mem_w") != std::string::npos;
    if (spec.name.find("mixer.mem_ln.weight") != std::string::npos) {
      // The memory's output gain: small, so M_W(x) = x + gamma LN(...) stays
      // near the identity while the writes reshape it.
      for (float& v : t.values) v = 0.3f + normal(0.05f);
    } else if (is_mem) {
      // The initial memory must not be zero (every gradient would be zero).
      const float fan_in = static_cast<float>(spec.shape[1]);
      for (float& v : t.values) v = normal(1.0f / std::sqrt(fan_in));
    } else if (is_norm) {
      for (float& v : t.values) v = 1.0f + normal(0.1f);
    } else if (is_bias) {
      const float center = spec.name.find("a_proj") != std::string::npos ? 2.0f : 0.0f;
      for (float& v : t.values) v = center + normal(0.5f);
    } else {
      const float fan_in = static_cast<float>(spec.shape.back());
      const float stddev = spec.name == "embed.weight" ? 1.0f : 1.0f / std::sqrt(fan_in);
      for (float& v : t.values) v = normal(stddev);
    }
    out.push_back(std::move(t));
  }
  return out;
}

absl::Status WriteRandomModel(const ModelConfig& c, const std::string& dir, uint64_t seed,
                              StDtype dtype) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    return absl::PermissionDeniedError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  std::ofstream cfg(dir + "/config.json", std::ios::trunc);
  cfg << c.ToJson() << "\n";
  cfg.close();
  if (!cfg) return absl::DataLossError(absl::StrCat("cannot write ", dir, "/config.json"));
  return WriteSafetensors(dir + "/model.safetensors", RandomWeights(c, seed, dtype));
}

}  // namespace mcserve::model
