// libmcserve_spm.so: libsentencepiece behind a C interface (spm_shim.h).
// No Abseil header may be included here: sentencepiece_processor.h declares
// its own absl::string_view, which clashes with Abseil's.
#include "server/tokenizer/spm_shim.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#define MCSERVE_SPM_EXPORT extern "C" __attribute__((visibility("default")))

struct McserveSpm {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {

constexpr int kInternal = 13;  // absl::StatusCode::kInternal

char* CopyOut(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p != nullptr) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

int Fail(const sentencepiece::util::Status& s, char** error) {
  if (s.ok()) return 0;
  *error = CopyOut(s.ToString());
  return static_cast<int>(s.code());
}

}  // namespace

MCSERVE_SPM_EXPORT McserveSpm* mcserve_spm_load(const char* path, int* code, char** error) {
  try {
    auto* spm = new McserveSpm;
    *code = Fail(spm->sp.Load(path), error);
    if (*code == 0) return spm;
    delete spm;
  } catch (const std::exception& e) {
    *code = kInternal;
    *error = CopyOut(e.what());
  }
  return nullptr;
}

MCSERVE_SPM_EXPORT void mcserve_spm_destroy(McserveSpm* spm) { delete spm; }

MCSERVE_SPM_EXPORT int mcserve_spm_piece_size(const McserveSpm* spm) {
  return spm->sp.GetPieceSize();
}

MCSERVE_SPM_EXPORT const char* mcserve_spm_piece(const McserveSpm* spm, int id, size_t* len) {
  const std::string& p = spm->sp.IdToPiece(id);
  *len = p.size();
  return p.data();
}

MCSERVE_SPM_EXPORT int mcserve_spm_piece_type(const McserveSpm* spm, int id) {
  return (spm->sp.IsControl(id) ? MCSERVE_SPM_CONTROL : 0) |
         (spm->sp.IsUnknown(id) ? MCSERVE_SPM_UNKNOWN : 0) |
         (spm->sp.IsUnused(id) ? MCSERVE_SPM_UNUSED : 0) |
         (spm->sp.IsByte(id) ? MCSERVE_SPM_BYTE : 0);
}

MCSERVE_SPM_EXPORT int mcserve_spm_piece_to_id(const McserveSpm* spm, const char* piece,
                                               size_t len) {
  return spm->sp.PieceToId(std::string(piece, len));
}

MCSERVE_SPM_EXPORT int mcserve_spm_bos_id(const McserveSpm* spm) { return spm->sp.bos_id(); }
MCSERVE_SPM_EXPORT int mcserve_spm_eos_id(const McserveSpm* spm) { return spm->sp.eos_id(); }
MCSERVE_SPM_EXPORT int mcserve_spm_unk_id(const McserveSpm* spm) { return spm->sp.unk_id(); }

MCSERVE_SPM_EXPORT int mcserve_spm_encode(const McserveSpm* spm, const char* text, size_t len,
                                          int** ids, size_t* n, char** error) {
  try {
    std::vector<int> out;
    const int code = Fail(spm->sp.Encode(std::string(text, len), &out), error);
    if (code != 0) return code;
    *n = out.size();
    *ids = static_cast<int*>(std::malloc(out.size() * sizeof(int) + 1));
    if (*ids == nullptr) throw std::bad_alloc();
    if (!out.empty()) std::memcpy(*ids, out.data(), out.size() * sizeof(int));
    return 0;
  } catch (const std::exception& e) {
    *error = CopyOut(e.what());
    return kInternal;
  }
}

MCSERVE_SPM_EXPORT int mcserve_spm_decode(const McserveSpm* spm, const int* ids, size_t n,
                                          char** text, size_t* len, char** error) {
  try {
    std::string out;
    const int code = Fail(spm->sp.Decode(std::vector<int>(ids, ids + n), &out), error);
    if (code != 0) return code;
    *len = out.size();
    *text = CopyOut(out);
    if (*text == nullptr) throw std::bad_alloc();
    return 0;
  } catch (const std::exception& e) {
    *error = CopyOut(e.what());
    return kInternal;
  }
}

MCSERVE_SPM_EXPORT void mcserve_spm_free(void* p) { std::free(p); }
