#include "server/pool/checkpoint_pool.h"

#include <cassert>

#include "absl/strings/str_cat.h"

namespace mcserve::pool {
namespace {

// Weight of a new observation in the running average of gate weights.
constexpr float kUsefulnessRate = 0.1f;

bool PinnedHostMemory(const at::Device& device) { return device.is_cuda(); }

}  // namespace

CheckpointPool::CheckpointPool(const model::ModelConfig& c, const PoolOptions& o)
    : device_slots_(0), host_slots_(0) {
  const int64_t L = c.n_layers, H = c.state_heads(), d = c.head_dim, dv = c.value_dim();
  const int64_t rows = c.ckpt_rows();
  const auto dev = at::TensorOptions().device(o.device);
  device_state_ = at::zeros({o.device_slots, L, H, rows, dv}, dev.dtype(o.dtype));
  device_summary_ = at::zeros({o.device_slots, L, H, d}, dev.dtype(at::kFloat));
  // Host slots are written before they are read: empty, so untouched pages
  // cost nothing until used.
  const auto host = at::TensorOptions().pinned_memory(PinnedHostMemory(o.device));
  host_state_ = at::empty({o.host_slots, L, H, rows, dv}, host.dtype(o.dtype));
  host_summary_ = at::empty({o.host_slots, L, H, d}, host.dtype(at::kFloat));
  // The slot lists after the tensors: a pool too big for memory is refused
  // at its first allocation, before gigabytes of free lists are written.
  device_slots_ = SlotAllocator(o.device_slots);
  host_slots_ = SlotAllocator(o.host_slots);
  entries_.reserve(o.device_slots + o.host_slots);
}

CkptId CheckpointPool::NewEntry() {
  CkptId id;
  if (free_ids_.empty()) {
    id = static_cast<CkptId>(entries_.size());
    entries_.emplace_back();
  } else {
    id = free_ids_.back();
    free_ids_.pop_back();
    entries_[id] = Entry{};
  }
  Entry& e = entries_[id];
  e.refs = 1;
  e.usefulness = 1.0f;  // presumed useful until the model says otherwise
  ++total_refs_;
  return id;
}

std::optional<CkptId> CheckpointPool::Create() {
  std::optional<int32_t> slot = device_slots_.Allocate();
  if (!slot) return std::nullopt;
  const CkptId id = NewEntry();
  entries_[id].device_slot = *slot;
  return id;
}

std::optional<CkptId> CheckpointPool::CreateFrom(const at::Tensor& state,
                                                 const at::Tensor& summary) {
  std::optional<CkptId> id = Create();
  if (!id) {
    std::optional<int32_t> slot = host_slots_.Allocate();
    if (!slot) return std::nullopt;
    id = NewEntry();
    entries_[*id].host_slot = *slot;
  }
  this->state(*id).copy_(state);
  this->summary(*id).copy_(summary);
  return id;
}

absl::Status CheckpointPool::Ref(CkptId id) {
  if (!alive(id)) {
    return absl::InternalError(
        absl::StrCat("Ref of checkpoint ", id, " which is not alive: reference count bug"));
  }
  ++entries_[id].refs;
  ++total_refs_;
  return absl::OkStatus();
}

absl::Status CheckpointPool::Unref(CkptId id) {
  if (!alive(id)) {
    return absl::InternalError(
        absl::StrCat("Unref of checkpoint ", id, " which is not alive: reference count bug"));
  }
  Entry& e = entries_[id];
  --total_refs_;
  if (--e.refs > 0) return absl::OkStatus();
  absl::Status st;
  if (e.device_slot >= 0) st.Update(device_slots_.Unref(e.device_slot));
  if (e.host_slot >= 0) st.Update(host_slots_.Unref(e.host_slot));
  e = Entry{};
  free_ids_.push_back(id);
  return st;
}

bool CheckpointPool::Offload(CkptId id) {
  Entry& e = entries_[id];
  assert(e.device_slot >= 0);
  std::optional<int32_t> slot = host_slots_.Allocate();
  if (!slot) return false;
  host_state_[*slot].copy_(device_state_[e.device_slot]);
  host_summary_[*slot].copy_(device_summary_[e.device_slot]);
  device_slots_.Unref(e.device_slot).IgnoreError();  // held by this entry
  e.device_slot = -1;
  e.host_slot = *slot;
  ++counters_.offloads;
  return true;
}

bool CheckpointPool::Fetch(CkptId id) {
  Entry& e = entries_[id];
  assert(e.host_slot >= 0);
  std::optional<int32_t> slot = device_slots_.Allocate();
  if (!slot) return false;
  device_state_[*slot].copy_(host_state_[e.host_slot]);
  device_summary_[*slot].copy_(host_summary_[e.host_slot]);
  host_slots_.Unref(e.host_slot).IgnoreError();  // held by this entry
  e.host_slot = -1;
  e.device_slot = *slot;
  ++counters_.fetches;
  return true;
}

void CheckpointPool::Merge(CkptId keep, CkptId gone) {
  at::Tensor s = state(keep), g = state(gone);
  // Averaged in float32 whatever the storage type, in keep's tier, then
  // stored back.
  s.copy_(s.to(at::kFloat).add(g.to(s.device(), at::kFloat)).mul_(0.5));
  at::Tensor sk = summary(keep);
  sk.add_(summary(gone).to(sk.device())).mul_(0.5);
  Entry& k = entries_[keep];
  k.usefulness = 0.5f * (k.usefulness + entries_[gone].usefulness);
  ++counters_.merges;
  Unref(gone).IgnoreError();  // alive: the caller holds it
}

void CheckpointPool::Observe(CkptId id, float weight) {
  Entry& e = entries_[id];
  e.usefulness = e.observed ? e.usefulness + kUsefulnessRate * (weight - e.usefulness) : weight;
  e.observed = true;
}

Tier CheckpointPool::tier(CkptId id) const {
  return entries_[id].device_slot >= 0 ? Tier::kDevice : Tier::kHost;
}

at::Tensor CheckpointPool::state(CkptId id) const {
  const Entry& e = entries_[id];
  return e.device_slot >= 0 ? device_state_[e.device_slot] : host_state_[e.host_slot];
}

at::Tensor CheckpointPool::summary(CkptId id) const {
  const Entry& e = entries_[id];
  return e.device_slot >= 0 ? device_summary_[e.device_slot] : host_summary_[e.host_slot];
}

}  // namespace mcserve::pool
