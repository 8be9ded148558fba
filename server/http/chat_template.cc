#include "server/http/chat_template.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/http/jinja_expr.h"
#include "server/util/status_macros.h"
#include "server/util/text_file.h"

namespace mcserve::http {
namespace {

using jinja::Error;
using jinja::Eval;
using jinja::Expr;
using jinja::ExprPtr;
using jinja::Items;
using jinja::json;
using jinja::ParseExpr;
using jinja::Scope;
using jinja::Str;
using jinja::Truthy;
using jinja::Value;

// ---------------------------------------------------------------------------
// The template's pieces: text, {{ output }} and {% statement %}, with
// Jinja's whitespace rules applied to the text.

struct Piece {
  enum Kind { kText, kOutput, kStatement } kind;
  std::string text;
  int line;
};

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'; }

absl::StatusOr<std::vector<Piece>> Split(absl::string_view src) {
  std::vector<Piece> out;
  size_t pos = 0;
  int line = 1;
  bool trim_next_newline = false;  // trim_blocks after a block tag
  bool strip_next = false;         // after a "-%}"
  auto lines_in = [](absl::string_view s) {
    return static_cast<int>(std::count(s.begin(), s.end(), '\n'));
  };
  while (pos <= src.size()) {
    size_t open = src.find('{', pos);
    while (open != absl::string_view::npos && open + 1 < src.size() && src[open + 1] != '{' &&
           src[open + 1] != '%' && src[open + 1] != '#') {
      open = src.find('{', open + 1);
    }
    if (open != absl::string_view::npos && open + 1 >= src.size()) open = absl::string_view::npos;
    const size_t text_end = open == absl::string_view::npos ? src.size() : open;
    std::string text(src.substr(pos, text_end - pos));
    // For lstrip_blocks, before the trimming below: the text after its last
    // newline, and whether that starts a line.
    const size_t last_nl = text.rfind('\n');
    const size_t tail = last_nl == std::string::npos ? text.size() : text.size() - last_nl - 1;
    const bool tail_starts_line = last_nl != std::string::npos || pos == 0 || src[pos - 1] == '\n';
    const bool tail_blank = text.find_first_not_of(" \t", text.size() - tail) == std::string::npos;
    const int text_line = line;
    line += lines_in(text);
    if (strip_next) {
      text.erase(0, std::find_if_not(text.begin(), text.end(), IsSpace) - text.begin());
    } else if (trim_next_newline) {
      if (absl::StartsWith(text, "\n")) {
        text.erase(0, 1);
      } else if (absl::StartsWith(text, "\r\n")) {
        text.erase(0, 2);
      }
    }
    strip_next = trim_next_newline = false;
    if (open == absl::string_view::npos) {
      if (!text.empty()) out.push_back({Piece::kText, std::move(text), text_line});
      break;
    }
    const char kind = src[open + 1];
    const char closer = kind == '{' ? '}' : kind;
    size_t body = open + 2;
    const bool strip_before = body < src.size() && src[body] == '-';
    const bool keep_before = body < src.size() && src[body] == '+';
    if (strip_before || keep_before) ++body;
    // The tag's end, outside string literals.
    size_t close = body;
    char quote = 0;
    for (; close + 1 < src.size(); ++close) {
      const char c = src[close];
      if (quote != 0) {
        if (c == '\\') {
          ++close;
        } else if (c == quote) {
          quote = 0;
        }
        continue;
      }
      if (kind != '#' && (c == '\'' || c == '"')) {
        quote = c;
        continue;
      }
      if (c == closer && src[close + 1] == '}') break;
    }
    if (close + 1 >= src.size()) return Error(line, "a tag is not closed");
    size_t inner_end = close;
    const bool strip_after = inner_end > body && src[inner_end - 1] == '-';
    if (strip_after) --inner_end;
    const bool block = kind != '{';
    if (strip_before) {
      while (!text.empty() && IsSpace(text.back())) text.pop_back();
    } else if (block && !keep_before) {
      // lstrip_blocks: spaces and tabs from the line's start to the tag.
      if (tail_starts_line && tail_blank) text.erase(text.size() - std::min(tail, text.size()));
    }
    if (!text.empty()) out.push_back({Piece::kText, std::move(text), text_line});
    const std::string inner(absl::StripAsciiWhitespace(src.substr(body, inner_end - body)));
    if (kind == '{') out.push_back({Piece::kOutput, inner, line});
    if (kind == '%') out.push_back({Piece::kStatement, inner, line});
    line += lines_in(src.substr(open, close + 2 - open));
    pos = close + 2;
    strip_next = strip_after;
    trim_next_newline = block && !strip_after;
  }
  return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Statements.

struct ChatTemplate::Node {
  enum Kind { kSeq, kText, kOutput, kIf, kFor, kSet } kind = kSeq;
  std::string text;            // kText: the text; kFor: the loop name; kSet: the name
  std::vector<ExprPtr> exprs;  // kOutput, kSet: the value; kIf: each branch's; kFor: the iterable
  std::vector<Node> children;  // kSeq: items; kIf: bodies (one more: else); kFor: body[, else]
  int line = 0;
};

namespace {

using Node = ChatTemplate::Node;

// The statement's first word and the rest.
std::pair<std::string, std::string> Keyword(const std::string& s) {
  const size_t sp = s.find_first_of(" \t\n\r");
  if (sp == std::string::npos) return {s, ""};
  return {s.substr(0, sp), std::string(absl::StripAsciiWhitespace(s.substr(sp)))};
}

bool IsIdentifier(absl::string_view s) {
  if (s.empty() || absl::ascii_isdigit(s[0])) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) && c != '_') return false;
  }
  return true;
}

absl::StatusOr<std::string> ParseSeq(const std::vector<Piece>& pieces, size_t& i,
                                     const std::vector<std::string>& ends, Node& seq);

// After an `else`: its body up to `end` (read too), added to `parent`.
absl::Status ParseElse(const std::vector<Piece>& pieces, size_t& i, absl::string_view opening,
                       const std::string& end, int line, Node& parent) {
  Node other;
  ASSIGN_OR_RETURN(std::string found, ParseSeq(pieces, i, {end}, other));
  if (found.empty()) return Error(line, absl::StrCat("'", opening, "' without '", end, "'"));
  ++i;
  parent.children.push_back(std::move(other));
  return absl::OkStatus();
}

// Parses pieces from `i` until a statement whose keyword is in `ends`
// (returned; "" at the end of the template).
absl::StatusOr<std::string> ParseSeq(const std::vector<Piece>& pieces, size_t& i,
                                     const std::vector<std::string>& ends, Node& seq) {
  seq.kind = Node::kSeq;
  while (i < pieces.size()) {
    const Piece& p = pieces[i++];
    if (p.kind == Piece::kText) {
      Node n;
      n.kind = Node::kText;
      n.text = p.text;
      seq.children.push_back(std::move(n));
      continue;
    }
    if (p.kind == Piece::kOutput) {
      Node n;
      n.kind = Node::kOutput;
      n.line = p.line;
      ASSIGN_OR_RETURN(ExprPtr e, ParseExpr(p.text, p.line));
      n.exprs.push_back(std::move(e));
      seq.children.push_back(std::move(n));
      continue;
    }
    const auto [word, rest] = Keyword(p.text);
    for (const std::string& end : ends) {
      if (word == end) {
        --i;  // the caller reads it
        return word;
      }
    }
    Node n;
    n.line = p.line;
    if (word == "if") {
      n.kind = Node::kIf;
      std::string cond = rest;
      for (;;) {
        ASSIGN_OR_RETURN(ExprPtr e, ParseExpr(cond, p.line));
        n.exprs.push_back(std::move(e));
        Node body;
        ASSIGN_OR_RETURN(std::string end, ParseSeq(pieces, i, {"elif", "else", "endif"}, body));
        n.children.push_back(std::move(body));
        if (end.empty()) return Error(p.line, "'if' without 'endif'");
        const auto [w, r] = Keyword(pieces[i++].text);
        if (w == "elif") {
          cond = r;
          continue;
        }
        if (w == "else") RETURN_IF_ERROR(ParseElse(pieces, i, "if", "endif", p.line, n));
        break;
      }
    } else if (word == "for") {
      n.kind = Node::kFor;
      const size_t in = rest.find(" in ");
      if (in == std::string::npos) return Error(p.line, "'for' needs 'NAME in EXPR'");
      n.text = std::string(absl::StripAsciiWhitespace(rest.substr(0, in)));
      if (!IsIdentifier(n.text)) {
        return Error(p.line,
                     absl::StrCat("unsupported loop target '", n.text, "' (one name only)"));
      }
      std::string iterable = rest.substr(in + 4);
      if (absl::StrContains(iterable, " recursive"))
        return Error(p.line, "recursive loops are not supported");
      ASSIGN_OR_RETURN(ExprPtr e, ParseExpr(iterable, p.line));
      if (e->kind == Expr::kCond && e->args[2]->kind == Expr::kLiteral &&
          e->args[2]->name == "undefined") {
        return Error(p.line, "loop filters ('for x in y if c') are not supported");
      }
      n.exprs.push_back(std::move(e));
      Node body;
      ASSIGN_OR_RETURN(std::string end, ParseSeq(pieces, i, {"else", "endfor"}, body));
      if (end.empty()) return Error(p.line, "'for' without 'endfor'");
      n.children.push_back(std::move(body));
      if (Keyword(pieces[i++].text).first == "else") {
        RETURN_IF_ERROR(ParseElse(pieces, i, "for", "endfor", p.line, n));
      }
    } else if (word == "set") {
      n.kind = Node::kSet;
      const size_t eq = rest.find('=');
      if (eq == std::string::npos) return Error(p.line, "block 'set' is not supported");
      n.text = std::string(absl::StripAsciiWhitespace(rest.substr(0, eq)));
      if (!IsIdentifier(n.text)) {
        return Error(p.line, absl::StrCat("unsupported assignment target '", n.text, "'"));
      }
      ASSIGN_OR_RETURN(ExprPtr e, ParseExpr(rest.substr(eq + 1), p.line));
      n.exprs.push_back(std::move(e));
    } else {
      return Error(p.line, absl::StrCat("unsupported statement '", word, "'"));
    }
    seq.children.push_back(std::move(n));
  }
  return std::string();
}

// A rendered prompt larger than this is refused (a template's loops are
// driven by the request's messages).
constexpr size_t kMaxRenderedBytes = 16 << 20;

absl::Status CheckSize(const std::string& out, int line) {
  if (out.size() <= kMaxRenderedBytes) return absl::OkStatus();
  return Error(line, "the rendered prompt is too large");
}

absl::Status RenderNode(const Node& n, Scope& scope, std::string& out) {
  switch (n.kind) {
    case Node::kSeq:
      for (const Node& c : n.children) RETURN_IF_ERROR(RenderNode(c, scope, out));
      return absl::OkStatus();
    case Node::kText:
      out += n.text;
      return CheckSize(out, n.line);
    case Node::kOutput: {
      ASSIGN_OR_RETURN(Value v, Eval(*n.exprs[0], scope));
      out += Str(v);
      return CheckSize(out, n.line);
    }
    case Node::kIf:
      for (size_t b = 0; b < n.exprs.size(); ++b) {
        ASSIGN_OR_RETURN(Value c, Eval(*n.exprs[b], scope));
        if (Truthy(c)) return RenderNode(n.children[b], scope, out);
      }
      if (n.children.size() > n.exprs.size()) return RenderNode(n.children.back(), scope, out);
      return absl::OkStatus();
    case Node::kSet: {
      ASSIGN_OR_RETURN(Value v, Eval(*n.exprs[0], scope));
      scope.Set(n.text, v.v);
      return absl::OkStatus();
    }
    case Node::kFor: {
      ASSIGN_OR_RETURN(Value seq, Eval(*n.exprs[0], scope));
      const std::vector<json> items = seq.undefined ? std::vector<json>() : Items(seq.v);
      if (!seq.undefined && !seq.v.is_array() && !seq.v.is_object() && !seq.v.is_string() &&
          !seq.v.is_null()) {
        return Error(n.line, "'for' over a value that is not iterable");
      }
      if (items.empty()) {
        return n.children.size() > 1 ? RenderNode(n.children[1], scope, out) : absl::OkStatus();
      }
      const int64_t len = static_cast<int64_t>(items.size());
      for (int64_t k = 0; k < len; ++k) {
        scope.Push();
        scope.Set(n.text, items[k]);
        scope.Set("loop", json{{"index", k + 1},
                               {"index0", k},
                               {"first", k == 0},
                               {"last", k + 1 == len},
                               {"length", len},
                               {"revindex", len - k},
                               {"revindex0", len - k - 1}});
        absl::Status s = RenderNode(n.children[0], scope, out);
        scope.Pop();
        RETURN_IF_ERROR(s);
      }
      return absl::OkStatus();
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::Parse(absl::string_view source) {
  absl::ConsumeSuffix(&source, "\n");  // Jinja drops one trailing newline
  ASSIGN_OR_RETURN(std::vector<Piece> pieces, Split(source));
  auto root = std::make_shared<Node>();
  size_t i = 0;
  ASSIGN_OR_RETURN(std::string end,
                   ParseSeq(pieces, i, {"elif", "else", "endif", "endfor"}, *root));
  if (!end.empty()) return Error(pieces[i].line, absl::StrCat("'", end, "' without its opening"));
  return ChatTemplate(std::move(root));
}

absl::StatusOr<std::string> ChatTemplate::Render(const nlohmann::ordered_json& context) const {
  Scope scope(context);
  std::string out;
  RETURN_IF_ERROR(RenderNode(*root_, scope, out));
  return out;
}

absl::StatusOr<std::optional<ModelChatTemplate>> LoadChatTemplate(const std::string& dir) {
  json config = json::object();  // tokenizer_config.json, when there is one
  const std::string config_path = dir + "/tokenizer_config.json";
  if (absl::StatusOr<std::string> text = ReadTextFile(config_path); text.ok()) {
    config = json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(config_path, ": not a JSON object"));
    }
  }
  std::string file = dir + "/chat_template.jinja";
  absl::StatusOr<std::string> source = ReadTextFile(file);
  if (!source.ok()) {
    auto it = config.find("chat_template");
    if (it == config.end() || it->is_null()) return std::nullopt;
    file = config_path;
    if (it->is_string()) {
      source = it->get<std::string>();
    } else if (it->is_array()) {
      for (const json& named : *it) {
        if (named.is_object() && named.value("name", json()) == "default" &&
            named.contains("template") && named["template"].is_string()) {
          source = named["template"].get<std::string>();
        }
      }
      if (!source.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(config_path, ": chat_template has no template named \"default\""));
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(config_path, ": chat_template must be a string or a list"));
    }
  }
  auto token = [&config](const char* key) -> std::string {
    auto it = config.find(key);
    if (it == config.end()) return "";
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
      return (*it)["content"].get<std::string>();
    }
    return "";
  };
  absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(*source);
  if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(file, ": ", t.status().message()));
  return ModelChatTemplate{file, *std::move(t), token("bos_token"), token("eos_token")};
}

}  // namespace mcserve::http
