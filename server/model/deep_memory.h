// Deep memory (mc-model.md §9): the memory of a head is a small MLP,
//   M_W(x) = x + gamma * LN(gelu(x W1) W2),
// written once per chunk of b tokens by a step of gradient descent (with
// momentum and decay) on 1/2 ||M_W(k) - v||^2. These are its tensor
// functions, batched over any leading dimensions, shared by decode and
// prefill so both compute the same thing.
//
// A memory W = (W1 [d, E*d], W2 [E*d, d]) of one head is held packed as one
// [2*E*d, d] matrix: W1's d*E*d entries (row-major) first, then W2's. Online
// memories, momenta and checkpoints all use this layout, so a checkpoint is
// a plain copy of the online memory and the checkpoint pool, snapshots and
// eviction treat deep and linear memories alike (ModelConfig::ckpt_rows).
#ifndef MCSERVE_SERVER_MODEL_DEEP_MEMORY_H_
#define MCSERVE_SERVER_MODEL_DEEP_MEMORY_H_

#include <ATen/ATen.h>

#include <cstdint>

#include "server/model/config.h"

namespace mcserve::model {

// w1 [..., d, hid], w2 [..., hid, d] -> [..., 2*hid, d].
at::Tensor PackDeepMemory(const at::Tensor& w1, const at::Tensor& w2);
// The halves of a packed memory [..., 2*hid, d]: W1 [..., d, hid] and
// W2 [..., hid, d] (views when `packed` is contiguous).
at::Tensor DeepW1(const at::Tensor& packed, int64_t hid);
at::Tensor DeepW2(const at::Tensor& packed, int64_t hid);

// Reads M_W(x) for rows x [..., H, t, d] of memories packed [..., H, 2*hid, d]
// (leading dimensions broadcast); gamma [H, d]. Returns [..., H, t, d].
at::Tensor DeepRead(const at::Tensor& packed, const at::Tensor& gamma, const at::Tensor& x,
                    int64_t hid);

// The closed-form gradient of one chunk, packed like the memory:
// sum_t theta_t grad_W 1/2 ||M_W(k_t) - v_t||^2 at W = `packed`
// [..., H, 2*hid, d], for keys and values [..., H, b, d] and steps theta
// [..., H, b].
at::Tensor DeepGradient(const at::Tensor& packed, const at::Tensor& gamma, const at::Tensor& k,
                        const at::Tensor& v, const at::Tensor& theta, int64_t hid);

// One write of the chunk's gradient g: clips each of g's halves per head to
// Frobenius norm grad_clip (if > 0), then Sigma <- eta Sigma - g and
// W <- rho W + Sigma. w, g [..., H, 2*hid, d]; rho and eta [..., H], each
// undefined for "no decay" (rho = 1) and "no momentum" (eta = 0, and
// `sigma` may be undefined). Returns the new W; *sigma, when defined, is
// replaced by the new momentum.
at::Tensor DeepWrite(const DeepMemoryConfig& cfg, const at::Tensor& w, const at::Tensor& g,
                     const at::Tensor& rho, const at::Tensor& eta, at::Tensor* sigma, int64_t hid);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_DEEP_MEMORY_H_
