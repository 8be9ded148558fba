// Reader and writer for the safetensors format (8-byte little-endian header
// length, a JSON header, then raw tensor bytes). Every structural problem is
// an error that says what is wrong and, where it applies, names the tensor.
#ifndef MCSERVE_SERVER_MODEL_SAFETENSORS_H_
#define MCSERVE_SERVER_MODEL_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mcserve::model {

enum class StDtype { kF32, kBF16, kF16 };

absl::string_view StDtypeName(StDtype d);
size_t StDtypeSize(StDtype d);

struct StTensor {
  StDtype dtype = StDtype::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;
};

// A memory-mapped safetensors file. Immutable after Open; thread-safe reads.
class SafetensorsFile {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::map<std::string, StTensor>& tensors() const { return tensors_; }

 private:
  SafetensorsFile() = default;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::map<std::string, StTensor> tensors_;
};

// A tensor to write: float32 values, stored as `dtype` (bf16 and f16 round
// to nearest even).
struct StWriteTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
  StDtype dtype = StDtype::kF32;
};

absl::Status WriteSafetensors(const std::string& path, const std::vector<StWriteTensor>& tensors);

// Converts stored values to float32.
std::vector<float> StToFloat(const StTensor& t);

// Drops the mapped pages that lie wholly inside `t`'s bytes from this
// process's resident set (they stay in the page cache and fault back in if
// read again). A loader calls it once a tensor is converted, so a large
// checkpoint is never resident twice (file pages and float32 copy).
void ReleasePages(const StTensor& t);

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_SAFETENSORS_H_
