// Strict reading of JSON config objects: typed fields with defaults and
// ranges, and an error for every key nobody asked for, so a config value the
// server does not understand is a load error naming the field.
#ifndef MCSERVE_SERVER_MODEL_JSON_READER_H_
#define MCSERVE_SERVER_MODEL_JSON_READER_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"

namespace mcserve::model {

// INVALID_ARGUMENT "<file>: field '<field>' <what>".
inline absl::Status FieldError(absl::string_view field, absl::string_view what,
                               absl::string_view file = "config.json") {
  return absl::InvalidArgumentError(absl::StrCat(file, ": field '", field, "' ", what));
}

// Reads fields of one JSON object and reports keys nobody asked for.
class ObjectReader {
 public:
  using Json = nlohmann::json;
  ObjectReader(const Json& obj, std::string prefix, std::string file = "config.json")
      : obj_(obj), prefix_(std::move(prefix)), file_(std::move(file)) {}

  absl::Status Error(absl::string_view key, absl::string_view what) const {
    return FieldError(Path(key), what, file_);
  }
  // Marks `key` as understood without reading it.
  void Ignore(absl::string_view key) { seen_.emplace_back(key); }

  std::string Path(absl::string_view key) const { return absl::StrCat(prefix_, key); }

  const Json* Find(absl::string_view key) {
    seen_.emplace_back(key);
    auto it = obj_.find(std::string(key));
    return it == obj_.end() ? nullptr : &*it;
  }

  absl::StatusOr<int64_t> Int(absl::string_view key, std::optional<int64_t> dflt,
                              int64_t min_value) {
    const Json* v = Find(key);
    if (v == nullptr) {
      if (dflt) return *dflt;
      return Error(key, "is required");
    }
    if (!v->is_number_integer()) return Error(key, "must be an integer");
    const int64_t x = v->get<int64_t>();
    if (x < min_value || x > (int64_t{1} << 30)) {
      return Error(key, absl::StrCat("must be in [", min_value, ", 2^30], got ", x));
    }
    return x;
  }

  absl::StatusOr<double> Number(absl::string_view key, std::optional<double> dflt) {
    const Json* v = Find(key);
    if (v == nullptr) {
      if (dflt) return *dflt;
      return Error(key, "is required");
    }
    if (!v->is_number()) return Error(key, "must be a number");
    return v->get<double>();
  }

  absl::StatusOr<bool> Bool(absl::string_view key, std::optional<bool> dflt = std::nullopt) {
    const Json* v = Find(key);
    if (v == nullptr) {
      if (dflt) return *dflt;
      return Error(key, "is required");
    }
    if (!v->is_boolean()) return Error(key, "must be true or false");
    return v->get<bool>();
  }

  absl::StatusOr<std::string> Enum(absl::string_view key, const std::vector<std::string>& allowed,
                                   std::optional<std::string> dflt = std::nullopt) {
    const Json* v = Find(key);
    if (v == nullptr) {
      if (dflt) return *dflt;
      return Error(key, "is required");
    }
    if (!v->is_string()) return Error(key, "must be a string");
    std::string s = v->get<std::string>();
    for (const auto& a : allowed) {
      if (s == a) return s;
    }
    return Error(key, absl::StrCat("has unknown value '", s,
                                   "' (expected one of: ", absl::StrJoin(allowed, ", "), ")"));
  }

  absl::StatusOr<const Json*> Object(absl::string_view key) {
    const Json* v = Find(key);
    if (v == nullptr) return Error(key, "is required");
    if (!v->is_object()) return Error(key, "must be an object");
    return v;
  }

  absl::Status NoUnknownKeys() const {
    for (const auto& [key, value] : obj_.items()) {
      bool known = false;
      for (const auto& s : seen_) known = known || s == key;
      if (!known) return Error(key, "is not a known config field");
    }
    return absl::OkStatus();
  }

 private:
  const Json& obj_;
  std::string prefix_;
  std::string file_;
  std::vector<std::string> seen_;
};

}  // namespace mcserve::model

#endif  // MCSERVE_SERVER_MODEL_JSON_READER_H_
