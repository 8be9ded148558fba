#include "server/model/checkpoint_files.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/util/status_macros.h"
#include "server/util/text_file.h"

namespace mcserve::model {
namespace {

using Json = nlohmann::json;
constexpr char kSingle[] = "model.safetensors";
constexpr char kIndex[] = "model.safetensors.index.json";

absl::StatusOr<std::map<std::string, std::string>> ReadIndex(const std::string& path) {
  ASSIGN_OR_RETURN(const std::string text, ReadTextFile(path));
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  auto it = j.find("weight_map");
  if (it == j.end() || !it->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no 'weight_map' object"));
  }
  std::map<std::string, std::string> map;
  for (const auto& [name, file] : it->items()) {
    if (!file.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": weight_map entry '", name, "' is not a file name"));
    }
    const std::string f = file.get<std::string>();
    if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..") {
      return absl::InvalidArgumentError(absl::StrCat(path, ": weight_map entry '", name,
                                                     "' names file '", f,
                                                     "' outside the checkpoint directory"));
    }
    map[name] = f;
  }
  return map;
}

}  // namespace

absl::StatusOr<CheckpointFiles> CheckpointFiles::Open(const std::string& dir) {
  CheckpointFiles c;
  const std::string single = dir + "/" + kSingle, index = dir + "/" + kIndex;
  std::error_code ec;
  const bool sharded = std::filesystem::exists(index, ec);
  if (ec) return absl::PermissionDeniedError(absl::StrCat(index, ": ", ec.message()));
  if (!sharded) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> opened = SafetensorsFile::Open(single);
    if (!opened.ok()) return opened.status();  // names the file's full path
    std::unique_ptr<SafetensorsFile> f = *std::move(opened);
    c.tensors_ = f->tensors();
    for (const auto& [name, t] : c.tensors_) c.file_of_[name] = kSingle;
    c.files_.push_back(std::move(f));
    c.description_ = kSingle;
    return c;
  }
  ASSIGN_OR_RETURN(const auto map, ReadIndex(index));
  std::set<std::string> shards;
  for (const auto& [name, file] : map) shards.insert(file);
  for (const std::string& shard : shards) {
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::Open(dir + "/" + shard);
    if (!f.ok()) {
      return absl::Status(f.status().code(),
                          absl::StrCat(index, " lists shard ", shard, ": ", f.status().message()));
    }
    for (const auto& [name, t] : (*f)->tensors()) {
      auto listed = map.find(name);
      if (listed == map.end() || listed->second != shard) {
        return absl::InvalidArgumentError(absl::StrCat(dir, "/", shard, " holds tensor '", name,
                                                       "', which ", kIndex,
                                                       " does not list in that shard"));
      }
      c.tensors_[name] = t;
      c.file_of_[name] = shard;
    }
    c.files_.push_back(*std::move(f));
  }
  for (const auto& [name, file] : map) {
    if (c.tensors_.count(name) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(index, " lists tensor '", name, "' in ", file, ", which lacks it"));
    }
  }
  c.description_ = absl::StrCat(kIndex, " (", shards.size(), " shards)");
  return c;
}

const std::string& CheckpointFiles::FileOf(const std::string& name) const {
  static const std::string kUnknown = "?";
  auto it = file_of_.find(name);
  return it == file_of_.end() ? kUnknown : it->second;
}

}  // namespace mcserve::model
