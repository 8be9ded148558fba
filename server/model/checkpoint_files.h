// The safetensors files of a checkpoint directory: model.safetensors, or
// the shards listed by model.safetensors.index.json (Hugging Face's sharded
// layout), memory-mapped and seen as one name -> tensor map. Errors name the
// file and the tensor: an index entry whose shard lacks the tensor, a shard
// that holds a tensor the index does not list for it, a tensor in two shards.
#ifndef MCSERVE_SERVER_MODEL_CHECKPOINT_FILES_H_
#define MCSERVE_SERVER_MODEL_CHECKPOINT_FILES_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/model/safetensors.h"

namespace mcserve::model {

class CheckpointFiles {
 public:
  static absl::StatusOr<CheckpointFiles> Open(const std::string& dir);

  // Every tensor, pointing into the mapped files (valid while this lives).
  const std::map<std::string, StTensor>& tensors() const { return tensors_; }
  // The file holding `name` (for error messages).
  const std::string& FileOf(const std::string& name) const;
  // True when the tensors come from shards listed by an index.
  bool sharded() const { return description_ != "model.safetensors"; }
  // "model.safetensors" or "model.safetensors.index.json (N shards)".
  const std::string& description() const { return description_; }

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, StTensor> tensors_;
  std::map<std::string, std::string> file_of_;
  std::string description_;
};

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_CHECKPOINT_FILES_H_
