// StateStore::Export and Import: a sequence's state as CPU tensors, for
// session snapshots.
#include "absl/strings/str_cat.h"
#include "server/state/state_store.h"
#include "server/util/status_macros.h"

namespace mcserve::state {
namespace {

std::vector<int64_t> LayerShape(int64_t layers, const model::StateTensorSpec& spec) {
  std::vector<int64_t> shape = {layers};
  shape.insert(shape.end(), spec.shape.begin(), spec.shape.end());
  return shape;
}

}  // namespace

StateImage StateStore::Export(const SeqState& s) const {
  const Record& r = rec(s);
  StateImage image;
  for (const at::Tensor& t : cache_.online) image.online.push_back(t[r.slot].cpu());
  for (pool::CkptId id : r.ckpts) {
    image.ckpt_states.push_back(pool_.state(id).cpu());
    image.ckpt_summary.push_back(pool_.summary(id).cpu());
    image.usefulness.push_back(pool_.usefulness(id));
  }
  image.eviction = r.eviction;
  return image;
}

absl::StatusOr<SeqState> StateStore::Import(const StateImage& image, absl::string_view owner) {
  const model::StateLayout& layout = model_.state_layout();
  const int64_t L = model_.config().n_layers;
  if (image.online.size() != layout.size()) {
    return absl::InvalidArgumentError(absl::StrCat("snapshot has ", image.online.size(),
                                                   " online-state tensors; the model has ",
                                                   layout.size()));
  }
  for (size_t i = 0; i < layout.size(); ++i) {
    if (image.online[i].sizes() != at::IntArrayRef(LayerShape(L, layout[i])) ||
        image.online[i].scalar_type() != layout[i].dtype) {
      return absl::InvalidArgumentError(absl::StrCat("snapshot's online state '", layout[i].name,
                                                     "' does not have the model's shape or type"));
    }
  }
  const int64_t n = static_cast<int64_t>(image.ckpt_states.size());
  auto free_slots = [&] {
    return (pool_.device_capacity() - pool_.device_used()) +
           (pool_.host_capacity() - pool_.host_used());
  };
  // Checkpoints only the prefix cache holds make room first.
  while (free_slots() < n && (ReclaimSlot(pool::Tier::kDevice) || ReclaimSlot(pool::Tier::kHost))) {
  }
  const int64_t free = free_slots();
  if (n > free) {
    return absl::ResourceExhaustedError(
        absl::StrCat("snapshot holds ", n, " checkpoints but the pool has ", free,
                     " free slots (raise --checkpoint_pool or --host_pool)"));
  }
  ASSIGN_OR_RETURN(SeqState s, Create(owner));
  Record& r = rec(s);
  const int32_t slot = r.slot;
  RETURN_IF_ERROR(Guard(owner, "restore a snapshot", [&] {
    for (size_t i = 0; i < layout.size(); ++i) cache_.online[i][slot].copy_(image.online[i]);
  }));
  const at::ScalarType dtype = model::CkptScalarType(model_.options().ckpt_dtype);
  for (int64_t i = 0; i < n; ++i) {
    std::optional<pool::CkptId> c;
    RETURN_IF_ERROR(Guard(owner, "restore a checkpoint", [&] {
      c = pool_.CreateFrom(image.ckpt_states[i].to(dtype), image.ckpt_summary[i]);
    }));
    // Counted free above, so this is a bug; `s` gives back what it took.
    if (!c) return absl::InternalError("checkpoint pool ran out of slots during import");
    pool_.Observe(*c, image.usefulness[i]);
    rec(s).ckpts.push_back(*c);
  }
  rec(s).eviction = image.eviction;
  return s;
}

}  // namespace mcserve::state
