#include "server/tokenizer/spm_processor.h"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "server/tokenizer/spm_shim.h"

#ifndef MCSERVE_SPM_SHIM_PATH
#define MCSERVE_SPM_SHIM_PATH ""
#endif

namespace mcserve::tokenizer {

struct SpmApi {
  decltype(&mcserve_spm_load) load;
  decltype(&mcserve_spm_destroy) destroy;
  decltype(&mcserve_spm_piece_size) piece_size;
  decltype(&mcserve_spm_piece) piece;
  decltype(&mcserve_spm_piece_type) piece_type;
  decltype(&mcserve_spm_piece_to_id) piece_to_id;
  decltype(&mcserve_spm_bos_id) bos_id;
  decltype(&mcserve_spm_eos_id) eos_id;
  decltype(&mcserve_spm_unk_id) unk_id;
  decltype(&mcserve_spm_encode) encode;
  decltype(&mcserve_spm_decode) decode;
  decltype(&mcserve_spm_free) free;
};

namespace {

std::string ShimPath() {
  if (const char* env = std::getenv("MCSERVE_SPM_SHIM"); env != nullptr && *env != '\0') {
    return env;
  }
  std::error_code ec;
  const std::string built = MCSERVE_SPM_SHIM_PATH;
  if (!built.empty() && std::filesystem::exists(built, ec)) return built;
  return "libmcserve_spm.so";
}

template <typename F>
bool Resolve(void* lib, const char* name, F& f) {
  f = reinterpret_cast<F>(dlsym(lib, name));
  return f != nullptr;
}

// Loads the shim once per process (a link namespace is a scarce resource).
absl::StatusOr<const SpmApi*> Api() {
  static const absl::StatusOr<const SpmApi*>* api = [] {
    const std::string path = ShimPath();
    void* lib = dlmopen(LM_ID_NEWLM, path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      return new absl::StatusOr<const SpmApi*>(absl::FailedPreconditionError(
          absl::StrCat("cannot load the SentencePiece shim ", path, ": ", dlerror())));
    }
    auto* a = new SpmApi;
    const bool ok = Resolve(lib, "mcserve_spm_load", a->load) &&
                    Resolve(lib, "mcserve_spm_destroy", a->destroy) &&
                    Resolve(lib, "mcserve_spm_piece_size", a->piece_size) &&
                    Resolve(lib, "mcserve_spm_piece", a->piece) &&
                    Resolve(lib, "mcserve_spm_piece_type", a->piece_type) &&
                    Resolve(lib, "mcserve_spm_piece_to_id", a->piece_to_id) &&
                    Resolve(lib, "mcserve_spm_bos_id", a->bos_id) &&
                    Resolve(lib, "mcserve_spm_eos_id", a->eos_id) &&
                    Resolve(lib, "mcserve_spm_unk_id", a->unk_id) &&
                    Resolve(lib, "mcserve_spm_encode", a->encode) &&
                    Resolve(lib, "mcserve_spm_decode", a->decode) &&
                    Resolve(lib, "mcserve_spm_free", a->free);
    if (!ok) {
      return new absl::StatusOr<const SpmApi*>(absl::FailedPreconditionError(
          absl::StrCat("the SentencePiece shim ", path, " lacks a function: ", dlerror())));
    }
    return new absl::StatusOr<const SpmApi*>(a);
  }();
  return *api;
}

// The shim's error: its code and message, the message freed.
absl::Status ShimError(const SpmApi& api, int code, char* error) {
  absl::Status s(static_cast<absl::StatusCode>(code), error != nullptr ? error : "unknown error");
  api.free(error);
  return s;
}

}  // namespace

absl::StatusOr<std::unique_ptr<SpmProcessor>> SpmProcessor::Load(const std::string& path) {
  absl::StatusOr<const SpmApi*> api = Api();
  if (!api.ok()) return api.status();
  int code = 0;
  char* error = nullptr;
  McserveSpm* spm = (*api)->load(path.c_str(), &code, &error);
  if (spm == nullptr) return ShimError(**api, code, error);
  return std::unique_ptr<SpmProcessor>(new SpmProcessor(*api, spm));
}

SpmProcessor::~SpmProcessor() { api_->destroy(spm_); }

int SpmProcessor::piece_size() const { return api_->piece_size(spm_); }

absl::string_view SpmProcessor::piece(int id) const {
  size_t len = 0;
  const char* p = api_->piece(spm_, id, &len);
  return absl::string_view(p, len);
}

int SpmProcessor::piece_to_id(absl::string_view piece) const {
  return api_->piece_to_id(spm_, piece.data(), piece.size());
}

int SpmProcessor::type(int id) const { return api_->piece_type(spm_, id); }
bool SpmProcessor::is_control(int id) const { return (type(id) & MCSERVE_SPM_CONTROL) != 0; }
bool SpmProcessor::is_unknown(int id) const { return (type(id) & MCSERVE_SPM_UNKNOWN) != 0; }
bool SpmProcessor::is_unused(int id) const { return (type(id) & MCSERVE_SPM_UNUSED) != 0; }
bool SpmProcessor::is_byte(int id) const { return (type(id) & MCSERVE_SPM_BYTE) != 0; }
int SpmProcessor::bos_id() const { return api_->bos_id(spm_); }
int SpmProcessor::eos_id() const { return api_->eos_id(spm_); }
int SpmProcessor::unk_id() const { return api_->unk_id(spm_); }

absl::StatusOr<std::vector<int>> SpmProcessor::Encode(absl::string_view text) const {
  int* ids = nullptr;
  size_t n = 0;
  char* error = nullptr;
  const int code = api_->encode(spm_, text.data(), text.size(), &ids, &n, &error);
  if (code != 0) return ShimError(*api_, code, error);
  std::vector<int> out(ids, ids + n);
  api_->free(ids);
  return out;
}

absl::StatusOr<std::string> SpmProcessor::Decode(const std::vector<int>& ids) const {
  char* text = nullptr;
  size_t len = 0;
  char* error = nullptr;
  const int code = api_->decode(spm_, ids.data(), ids.size(), &text, &len, &error);
  if (code != 0) return ShimError(*api_, code, error);
  std::string out(text, len);
  api_->free(text);
  return out;
}

}  // namespace mcserve::tokenizer
