// libsentencepiece, loaded apart from the rest of the process.
//
// Debian's libsentencepiece (0.1.97) carries its own protobuf-lite (3.14)
// and exports its symbols. In a process that also holds gRPC's libprotobuf
// (3.21) the two bind to each other's functions and crash (the static
// initializers already do: sentencepiece issues #723, #927). So the server
// never links libsentencepiece: a shim (libmcserve_spm.so, spm_shim.h)
// that does is loaded with dlmopen into a link namespace of its own, where
// only its own protobuf is in sight, and is called through a C interface.
//
// The shim is looked for at $MCSERVE_SPM_SHIM, then where the build put it,
// then as libmcserve_spm.so on the loader's path (e.g. LD_LIBRARY_PATH).
// Thread-safe: const methods may be called concurrently.
#ifndef MCSERVE_SERVER_TOKENIZER_SPM_PROCESSOR_H_
#define MCSERVE_SERVER_TOKENIZER_SPM_PROCESSOR_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

struct McserveSpm;

namespace mcserve::tokenizer {

struct SpmApi;  // the shim's functions

class SpmProcessor {
 public:
  // Loads a serialized SentencePiece model from `path`. FAILED_PRECONDITION
  // when the shim cannot be loaded; SentencePiece's own status otherwise.
  static absl::StatusOr<std::unique_ptr<SpmProcessor>> Load(const std::string& path);
  ~SpmProcessor();
  SpmProcessor(const SpmProcessor&) = delete;
  SpmProcessor& operator=(const SpmProcessor&) = delete;

  int piece_size() const;
  // id in [0, piece_size()); the bytes live as long as the processor.
  absl::string_view piece(int id) const;
  // unk_id() for a piece the model does not have.
  int piece_to_id(absl::string_view piece) const;
  bool is_control(int id) const;
  bool is_unknown(int id) const;
  bool is_unused(int id) const;
  bool is_byte(int id) const;
  // -1 when the model has none.
  int bos_id() const;
  int eos_id() const;
  int unk_id() const;

  absl::StatusOr<std::vector<int>> Encode(absl::string_view text) const;
  // ids in [0, piece_size()).
  absl::StatusOr<std::string> Decode(const std::vector<int>& ids) const;

 private:
  SpmProcessor(const SpmApi* api, McserveSpm* spm) : api_(api), spm_(spm) {}
  int type(int id) const;

  const SpmApi* const api_;
  McserveSpm* const spm_;
};

}  // namespace mcserve::tokenizer

#endif  // MCSERVE_SERVER_TOKENIZER_SPM_PROCESSOR_H_
