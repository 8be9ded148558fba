// Turns one request's generated tokens into stream updates: detects EOS,
// stop token ids, stop strings and max_tokens, and releases text that is
// complete UTF-8 and cannot be the start of a stop string.
//
// Text comes from the tokenizer's TextStream (whole characters, with the
// tokenizer's rules across tokens); stop strings are matched on that text,
// so they may span tokens, and a token may complete one anywhere in its
// text (the text from the match on is dropped, or from its end with
// include_stop_str_in_output). Stop strings match only from the min_tokens-th
// token on (vLLM).
// Thread-compatible (engine thread).
#ifndef MCSERVE_SERVER_ENGINE_OUTPUT_PROCESSOR_H_
#define MCSERVE_SERVER_ENGINE_OUTPUT_PROCESSOR_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/types/span.h"
#include "server/engine/request.h"
#include "server/tokenizer/tokenizer.h"
#include "server/tokenizer/utf8_stream.h"

namespace mcserve::engine {

class OutputProcessor {
 public:
  // `params` and `tok` must outlive the processor. The text starts as that
  // of a new sequence (see SetContext).
  OutputProcessor(const RequestParams& params, const tokenizer::Tokenizer& tok);

  // Before the first Add: the generation continues a sequence whose text so
  // far has come out or not (`at_text_start`, Session::text_at_start) and
  // then the prompt `context`, whose text is not streamed.
  void SetContext(bool at_text_start, absl::Span<const int32_t> context);

  // Adds a generated token; returns the text it releases and updates
  // finish_reason() when it ends the generation.
  std::string Add(int32_t token);
  // Ends the stream early (cancel): returns any text still held.
  std::string Close();

  FinishReason finish_reason() const { return reason_; }
  bool finished() const { return reason_ != FinishReason::kNone; }
  int32_t generated() const { return generated_; }
  const std::optional<std::string>& matched_stop_str() const { return matched_str_; }
  const std::optional<int32_t>& matched_token_id() const { return matched_id_; }
  // Whether the sequence, with every token added so far, has produced no
  // text yet (the next request of the session starts from this).
  bool at_text_start() const { return stream_->at_text_start(); }

 private:
  // Finds the stop string that the text completes first, from released_ on;
  // on a match ends the generation and returns the text before it.
  std::optional<std::string> MatchStop();
  // Length of the longest suffix of text_ that is a proper prefix of a stop string.
  size_t HeldBack() const;
  std::string Release(size_t upto);

  const RequestParams& params_;
  const tokenizer::Tokenizer& tok_;
  std::unique_ptr<tokenizer::TextStream> stream_;
  std::string text_;     // generated text
  size_t released_ = 0;  // bytes of text_ handed to utf8_
  // Released text goes through here so that a cut inside a character (a
  // stop string that starts mid-character) never splits it.
  tokenizer::Utf8Stream utf8_;
  int32_t generated_ = 0;
  FinishReason reason_ = FinishReason::kNone;
  std::optional<std::string> matched_str_;
  std::optional<int32_t> matched_id_;
};

}  // namespace mcserve::engine

#endif  // MCSERVE_SERVER_ENGINE_OUTPUT_PROCESSOR_H_
