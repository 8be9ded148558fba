// The tokenizer interface: text to the model's ids and back, and the
// incremental text of a generation (TextStream).
//
// Ids. The model has vocab_size() ids (its embedding rows); every id below
// it is valid input. The tokenizer itself may define fewer
// (tokenizer_vocab_size()): the ids from there up to vocab_size() are
// padding, which has no text and is never sampled.
//
// Thread safety: a Tokenizer is immutable after it is built, so its const
// methods may be called from any number of threads at once. A TextStream
// belongs to one sequence and is thread-compatible.
#ifndef MCSERVE_SERVER_TOKENIZER_TOKENIZER_H_
#define MCSERVE_SERVER_TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace mcserve::tokenizer {

// The text of one sequence's ids, id by id. The concatenation of what Push
// and Flush return equals the tokenizer's Decode of the same ids (for a
// stream created at the start of the text; see Tokenizer::NewStream for a
// stream that continues one). Returned text is always valid UTF-8 and never
// splits a character: the bytes of an unfinished character wait in the
// stream for the rest.
class TextStream {
 public:
  virtual ~TextStream() = default;

  // Adds `id` (in [0, vocab_size), which the caller checks); returns the
  // text it completes, possibly none.
  virtual std::string Push(int32_t id) = 0;
  // Ends the current run of bytes: an unfinished character becomes U+FFFD,
  // as Decode would make it at the end of the ids. Pushing may go on after.
  virtual std::string Flush() = 0;
  // True while the ids pushed so far have produced no text and hold none
  // back. A stream that continues the same sequence (the next request of a
  // session) is created with this value.
  virtual bool at_text_start() const = 0;
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // "byte" or "sentencepiece".
  virtual absl::string_view kind() const = 0;
  // The model's vocabulary size: ids in [0, vocab_size()) are valid.
  virtual int32_t vocab_size() const = 0;
  // The ids the tokenizer defines (<= vocab_size()); the rest are padding.
  virtual int32_t tokenizer_vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;
  virtual int32_t eos_id() const = 0;
  // The file it was loaded from (SentencePiece: the tokenizer.model); empty
  // for the byte tokenizer.
  virtual const std::string& model_path() const = 0;

  // The ids of `text`, without BOS.
  virtual absl::StatusOr<std::vector<int32_t>> Encode(absl::string_view text) const = 0;
  // The text of `ids`. INVALID_ARGUMENT, naming the index and the id, for an
  // id outside [0, vocab_size()). bos, eos, other control ids and padding
  // have no text.
  virtual absl::StatusOr<std::string> Decode(absl::Span<const int32_t> ids) const = 0;
  // The bytes `id` contributes to a text in the middle of a stream (a byte
  // id: its one byte, possibly part of a character; no bytes for control
  // and padding ids). Decode and TextStream add the rules that span ids
  // (whole characters, SentencePiece's start of text); this is for logs
  // and tests.
  virtual std::string TokenBytes(int32_t id) const = 0;

  // Whether the sampler may ever choose `id`: ids that carry text, and eos.
  // Never bos, other control ids or padding.
  virtual bool Sampleable(int32_t id) const = 0;
  // Every sampleable id, ascending.
  virtual const std::vector<int32_t>& sampleable_ids() const = 0;

  // A stream of a sequence's text from here on. `at_text_start`: the
  // sequence so far has produced no text (a new sequence, or one that only
  // holds BOS); SentencePiece drops the dummy-prefix space of the first
  // piece of a text. Then, for ids G that continue ids C, the stream's text
  // of G equals Decode(C + G) minus its prefix Decode(C) (as long as C
  // does not end inside a character made of byte pieces).
  virtual std::unique_ptr<TextStream> NewStream(bool at_text_start) const = 0;
};

// INVALID_ARGUMENT unless every id is in [0, vocab_size): "ids[3] = 600 is
// not below vocab_size 512".
absl::Status CheckIds(absl::Span<const int32_t> ids, int32_t vocab_size);

}  // namespace mcserve::tokenizer

#endif  // MCSERVE_SERVER_TOKENIZER_TOKENIZER_H_
