// Chat templates: the Jinja subset that Hugging Face chat templates are
// written in, rendered as transformers' apply_chat_template does
// (trim_blocks and lstrip_blocks on; `{%-` and `-%}` strip whitespace).
//
// Supported: text, {{ expr }}, {# comments #}; {% if / elif / else / endif %},
// {% for x in expr %} ... {% else %} ... {% endfor %} (loop.index, index0,
// first, last, length, revindex, revindex0), {% set name = expr %}.
// Expressions: string, integer, float, true/false/none literals, lists and
// dicts, names, a.b, a[i], a[i:j] slices, + - * / // % ~, comparisons,
// in / not in, and / or / not, `x if c else y`, tests (is [not] defined,
// none, string, number, mapping, sequence, iterable, even, odd, true,
// false), filters (trim, length, count, upper, lower, capitalize, title,
// string, tojson, first, last, default, join, list), string methods (strip,
// lstrip, rstrip, upper, lower, startswith, endswith, split, replace,
// title), dict methods (get, items, keys, values), raise_exception(msg).
// Anything else (macros, includes, namespace(), a loop's tuple targets, any
// other filter, test, function or method) is refused when the template is
// parsed, naming the line, so a model whose template needs more fails at
// start rather than at a user's request. Arguments are read by position
// (keyword names are dropped: tojson(indent=2) is compact). Strings are
// bytes: length, indexing, slicing and case changes are those of ASCII.
// Bounds: range() of at most 2^20 items, strings of at most 8 MiB, a
// rendered prompt of at most 16 MiB.
#ifndef MCSERVE_SERVER_HTTP_CHAT_TEMPLATE_H_
#define MCSERVE_SERVER_HTTP_CHAT_TEMPLATE_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mcserve::http {

class ChatTemplate {
 public:
  // INVALID_ARGUMENT "line N: ..." for a syntax error or an unsupported
  // construct.
  static absl::StatusOr<ChatTemplate> Parse(absl::string_view source);

  // Renders with `context`'s members as variables (messages, bos_token,
  // eos_token, add_generation_prompt, ...). raise_exception(msg) and type
  // errors are INVALID_ARGUMENT with the message.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& context) const;

  struct Node;  // parsed template (chat_template.cc)

 private:
  explicit ChatTemplate(std::shared_ptr<const Node> root) : root_(std::move(root)) {}
  std::shared_ptr<const Node> root_;
};

// A model directory's chat template with its special-token strings.
struct ModelChatTemplate {
  std::string file;  // where it came from
  ChatTemplate tmpl;
  std::string bos_token;  // tokenizer_config.json's, "" if none
  std::string eos_token;
};

// The template of model directory `dir`: chat_template.jinja, else the
// chat_template of tokenizer_config.json (a string, or a list of named
// templates: "default"). nullopt when it has none; an error naming the file
// when it has one that cannot be read or parsed.
absl::StatusOr<std::optional<ModelChatTemplate>> LoadChatTemplate(const std::string& dir);

}  // namespace mcserve::http

#endif  // MCSERVE_SERVER_HTTP_CHAT_TEMPLATE_H_
