// libFuzzer target: a model directory's JSON as the loader reads it:
// config.json of either family (mc-lm: ModelConfig::FromJson; fla:
// ParseFlaConfig) and an fla model's Memory Caching overlay (ApplyMcOverlay,
// the bytes after the first NUL). Any input must give a config or a status.
#include <cstddef>
#include <cstdint>

#include "server/model/config.h"
#include "server/model/fla_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nul = in.find('\0');
  const absl::string_view config = in.substr(0, nul);
  (void)mcserve::model::PeekModelType(config);
  (void)mcserve::model::ModelConfig::FromJson(config);
  absl::StatusOr<mcserve::model::ModelConfig> fla = mcserve::model::ParseFlaConfig(config);
  if (fla.ok() && nul != absl::string_view::npos) {
    (void)mcserve::model::ApplyMcOverlay(in.substr(nul + 1), "overlay", *fla);
  }
  return 0;
}
