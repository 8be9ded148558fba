// Parsing the expressions of the chat-template Jinja subset (jinja_expr.h):
// lexer, precedence-climbing parser, and the check that every filter, test,
// function and method named is one the evaluator has.
#include <algorithm>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/http/jinja_expr.h"
#include "server/util/status_macros.h"

namespace mcserve::http::jinja {

absl::Status Error(int line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("chat template line ", line, ": ", what));
}

namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'; }

struct Token {
  enum Kind { kName, kString, kInt, kFloat, kOp, kEnd } kind;
  std::string text;
  json value;
};

absl::StatusOr<std::vector<Token>> Lex(absl::string_view s, int line) {
  std::vector<Token> out;
  size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (IsSpace(c)) {
      ++i;
    } else if (absl::ascii_isalpha(c) || c == '_') {
      size_t j = i;
      while (j < s.size() && (absl::ascii_isalnum(s[j]) || s[j] == '_')) ++j;
      out.push_back({Token::kName, std::string(s.substr(i, j - i)), nullptr});
      i = j;
    } else if (absl::ascii_isdigit(c)) {
      size_t j = i;
      while (j < s.size() && absl::ascii_isdigit(s[j])) ++j;
      bool is_float = false;
      if (j + 1 < s.size() && s[j] == '.' && absl::ascii_isdigit(s[j + 1])) {
        is_float = true;
        ++j;
        while (j < s.size() && absl::ascii_isdigit(s[j])) ++j;
      }
      const std::string num(s.substr(i, j - i));
      if (is_float) {
        out.push_back({Token::kFloat, num, std::strtod(num.c_str(), nullptr)});
      } else {
        out.push_back({Token::kInt, num, std::strtoll(num.c_str(), nullptr, 10)});
      }
      i = j;
    } else if (c == '\'' || c == '"') {
      std::string str;
      size_t j = i + 1;
      for (; j < s.size() && s[j] != c; ++j) {
        if (s[j] != '\\' || j + 1 >= s.size()) {
          str += s[j];
          continue;
        }
        const char e = s[++j];
        str += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
      }
      if (j >= s.size()) return Error(line, "a string is not closed");
      out.push_back({Token::kString, "", str});
      i = j + 1;
    } else {
      static const char* const kOps[] = {"//", "==", "!=", "<=", ">=", "(", ")", "[",
                                         "]",  "{",  "}",  ".",  ",",  ":", "|", "~",
                                         "+",  "-",  "*",  "/",  "%",  "<", ">", "="};
      bool found = false;
      for (const char* op : kOps) {
        if (absl::StartsWith(s.substr(i), op)) {
          out.push_back({Token::kOp, op, nullptr});
          i += std::string(op).size();
          found = true;
          break;
        }
      }
      if (!found)
        return Error(line, absl::StrCat("unexpected character '", std::string(1, c), "'"));
    }
  }
  out.push_back({Token::kEnd, "", nullptr});
  return out;
}

ExprPtr Make(Expr::Kind k, int line, std::string name = "") {
  auto e = std::make_unique<Expr>();
  e->kind = k;
  e->line = line;
  e->name = std::move(name);
  return e;
}

class ExprParser {
 public:
  ExprParser(std::vector<Token> tokens, int line) : t_(std::move(tokens)), line_(line) {}

  absl::StatusOr<ExprPtr> Whole() {
    ASSIGN_OR_RETURN(ExprPtr e, Conditional());
    if (Peek().kind != Token::kEnd) return Unexpected();
    return e;
  }
  // For statements: the parser stops at what the caller reads next.
  absl::StatusOr<ExprPtr> Conditional() {
    ASSIGN_OR_RETURN(ExprPtr e, Or());
    if (!IsName("if")) return e;
    ++i_;
    auto c = Make(Expr::kCond, line_);
    ASSIGN_OR_RETURN(ExprPtr cond, Or());
    ExprPtr other;
    if (IsName("else")) {
      ++i_;
      ASSIGN_OR_RETURN(other, Conditional());
    } else {
      other = Make(Expr::kLiteral, line_);
      other->name = "undefined";
    }
    c->args.push_back(std::move(cond));
    c->args.push_back(std::move(e));
    c->args.push_back(std::move(other));
    return c;
  }
  const Token& Peek() const { return t_[i_]; }
  bool IsName(absl::string_view n) const { return Peek().kind == Token::kName && Peek().text == n; }
  bool IsOp(absl::string_view o) const { return Peek().kind == Token::kOp && Peek().text == o; }
  void Skip() { ++i_; }
  absl::Status Unexpected() const {
    const Token& t = Peek();
    return Error(line_, t.kind == Token::kEnd ? std::string("unexpected end of expression")
                                              : absl::StrCat("unexpected '", t.text, "'"));
  }
  absl::Status Expect(absl::string_view op) {
    if (!IsOp(op)) return Unexpected();
    ++i_;
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<ExprPtr> Or() {
    ASSIGN_OR_RETURN(ExprPtr e, And());
    while (IsName("or")) {
      ++i_;
      auto b = Make(Expr::kOr, line_);
      b->args.push_back(std::move(e));
      ASSIGN_OR_RETURN(ExprPtr r, And());
      b->args.push_back(std::move(r));
      e = std::move(b);
    }
    return e;
  }
  absl::StatusOr<ExprPtr> And() {
    ASSIGN_OR_RETURN(ExprPtr e, Not());
    while (IsName("and")) {
      ++i_;
      auto b = Make(Expr::kAnd, line_);
      b->args.push_back(std::move(e));
      ASSIGN_OR_RETURN(ExprPtr r, Not());
      b->args.push_back(std::move(r));
      e = std::move(b);
    }
    return e;
  }
  absl::StatusOr<ExprPtr> Not() {
    if (!IsName("not")) return Compare();
    ++i_;
    auto n = Make(Expr::kNot, line_);
    ASSIGN_OR_RETURN(ExprPtr e, Not());
    n->args.push_back(std::move(e));
    return n;
  }
  // Jinja's precedence, loosest first: comparisons, + -, ~, * / // %, then
  // unary minus, postfix, and filters and tests (`|`, `is`) binding tightest.
  absl::StatusOr<ExprPtr> Compare() {
    ASSIGN_OR_RETURN(ExprPtr e, Add());
    for (;;) {
      std::string op;
      bool negate = false;
      if (Peek().kind == Token::kOp &&
          (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp(">") || IsOp("<=") || IsOp(">="))) {
        op = Peek().text;
        ++i_;
      } else if (IsName("in")) {
        op = "in";
        ++i_;
      } else if (IsName("not") && t_[i_ + 1].kind == Token::kName && t_[i_ + 1].text == "in") {
        op = "in";
        negate = true;
        i_ += 2;
      } else {
        return e;
      }
      auto b = Make(Expr::kBinary, line_, op);
      b->negate = negate;
      b->args.push_back(std::move(e));
      ASSIGN_OR_RETURN(ExprPtr r, Add());
      b->args.push_back(std::move(r));
      e = std::move(b);
    }
  }
  absl::StatusOr<ExprPtr> Add() { return Binary({"+", "-"}, &ExprParser::Concat); }
  absl::StatusOr<ExprPtr> Concat() { return Binary({"~"}, &ExprParser::Mul); }
  absl::StatusOr<ExprPtr> Mul() { return Binary({"*", "/", "//", "%"}, &ExprParser::Unary); }
  absl::StatusOr<ExprPtr> Binary(std::vector<std::string> ops,
                                 absl::StatusOr<ExprPtr> (ExprParser::*next)()) {
    ASSIGN_OR_RETURN(ExprPtr e, (this->*next)());
    for (;;) {
      std::string op;
      for (const std::string& o : ops) {
        if (IsOp(o)) op = o;
      }
      if (op.empty()) return e;
      ++i_;
      auto b = Make(Expr::kBinary, line_, op);
      b->args.push_back(std::move(e));
      ASSIGN_OR_RETURN(ExprPtr r, (this->*next)());
      b->args.push_back(std::move(r));
      e = std::move(b);
    }
  }
  // As Jinja: -x|f is (-x)|f.
  absl::StatusOr<ExprPtr> Unary() { return Unary(/*with_filters=*/true); }
  absl::StatusOr<ExprPtr> Unary(bool with_filters) {
    ExprPtr e;
    if (IsOp("-")) {
      ++i_;
      e = Make(Expr::kNeg, line_);
      ASSIGN_OR_RETURN(ExprPtr operand, Unary(false));
      e->args.push_back(std::move(operand));
    } else {
      if (IsOp("+")) ++i_;
      ASSIGN_OR_RETURN(e, Postfix());
    }
    if (!with_filters) return e;
    return FiltersAndTests(std::move(e));
  }
  absl::StatusOr<ExprPtr> FiltersAndTests(ExprPtr e) {
    for (;;) {
      if (IsOp("|")) {
        ++i_;
        if (Peek().kind != Token::kName) return Unexpected();
        auto f = Make(Expr::kFilter, line_, Peek().text);
        ++i_;
        f->args.push_back(std::move(e));
        if (IsOp("(")) RETURN_IF_ERROR(Args(f->args));
        e = std::move(f);
      } else if (IsName("is")) {
        ++i_;
        bool negate = false;
        if (IsName("not")) {
          negate = true;
          ++i_;
        }
        if (Peek().kind != Token::kName) return Unexpected();
        auto test = Make(Expr::kTest, line_, Peek().text);
        ++i_;
        test->negate = negate;
        test->args.push_back(std::move(e));
        e = std::move(test);
      } else {
        return e;
      }
    }
  }
  absl::Status Args(std::vector<ExprPtr>& args) {
    RETURN_IF_ERROR(Expect("("));
    while (!IsOp(")")) {
      // Keyword arguments are read by position.
      if (Peek().kind == Token::kName && t_[i_ + 1].kind == Token::kOp && t_[i_ + 1].text == "=") {
        i_ += 2;
      }
      ASSIGN_OR_RETURN(ExprPtr a, Conditional());
      args.push_back(std::move(a));
      if (!IsOp(",")) break;
      ++i_;
    }
    return Expect(")");
  }
  absl::StatusOr<ExprPtr> Postfix() {
    ASSIGN_OR_RETURN(ExprPtr e, Primary());
    for (;;) {
      if (IsOp(".")) {
        ++i_;
        if (Peek().kind != Token::kName) return Unexpected();
        auto a = Make(Expr::kAttr, line_, Peek().text);
        ++i_;
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (IsOp("[")) {
        ++i_;
        ExprPtr from, to;
        if (!IsOp(":")) {
          ASSIGN_OR_RETURN(from, Conditional());
        }
        if (IsOp(":")) {
          ++i_;
          if (!IsOp("]")) {
            ASSIGN_OR_RETURN(to, Conditional());
          }
          auto s = Make(Expr::kSlice, line_);
          s->args.push_back(std::move(e));
          s->args.push_back(std::move(from));
          s->args.push_back(std::move(to));
          e = std::move(s);
        } else {
          auto x = Make(Expr::kIndex, line_);
          x->args.push_back(std::move(e));
          x->args.push_back(std::move(from));
          e = std::move(x);
        }
        RETURN_IF_ERROR(Expect("]"));
      } else if (IsOp("(")) {
        auto c = Make(Expr::kCall, line_);
        c->args.push_back(std::move(e));
        RETURN_IF_ERROR(Args(c->args));
        e = std::move(c);
      } else {
        return e;
      }
    }
  }
  absl::StatusOr<ExprPtr> Primary() {
    const Token t = Peek();
    switch (t.kind) {
      case Token::kString:
      case Token::kInt:
      case Token::kFloat: {
        ++i_;
        auto l = Make(Expr::kLiteral, line_);
        l->literal = t.value;
        // Adjacent string literals concatenate, as in Python.
        while (t.kind == Token::kString && Peek().kind == Token::kString) {
          l->literal = l->literal.get<std::string>() + Peek().value.get<std::string>();
          ++i_;
        }
        return l;
      }
      case Token::kName: {
        ++i_;
        auto l = Make(Expr::kLiteral, line_);
        if (t.text == "true" || t.text == "True") {
          l->literal = true;
        } else if (t.text == "false" || t.text == "False") {
          l->literal = false;
        } else if (t.text == "none" || t.text == "None") {
          l->literal = nullptr;
        } else {
          return Make(Expr::kName, line_, t.text);
        }
        return l;
      }
      case Token::kOp:
        if (t.text == "(") {
          ++i_;
          ASSIGN_OR_RETURN(ExprPtr e, Conditional());
          RETURN_IF_ERROR(Expect(")"));
          return e;
        }
        if (t.text == "[" || t.text == "{") {
          const bool dict = t.text == "{";
          const std::string close = dict ? "}" : "]";
          ++i_;
          auto l = Make(dict ? Expr::kDict : Expr::kList, line_);
          while (!IsOp(close)) {
            ASSIGN_OR_RETURN(ExprPtr item, Conditional());
            l->args.push_back(std::move(item));
            if (dict) {
              RETURN_IF_ERROR(Expect(":"));
              ASSIGN_OR_RETURN(ExprPtr v, Conditional());
              l->args.push_back(std::move(v));
            }
            if (!IsOp(",")) break;
            ++i_;
          }
          RETURN_IF_ERROR(Expect(close));
          return l;
        }
        break;
      default:
        break;
    }
    return Unexpected();
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int line_;
};

// Every filter, test, function and method `e` names is one this renderer
// has: a template needing another fails when parsed, not per request.
absl::Status CheckNames(const Expr& e) {
  if (e.kind == Expr::kFilter && !HasFilter(e.name)) {
    return Error(e.line, absl::StrCat("unsupported filter '", e.name, "'"));
  }
  if (e.kind == Expr::kTest && !HasTest(e.name)) {
    return Error(e.line, absl::StrCat("unsupported test '", e.name, "'"));
  }
  if (e.kind == Expr::kCall) {
    const Expr& callee = *e.args[0];
    if (callee.kind == Expr::kAttr && !HasMethod(callee.name)) {
      return Error(e.line, absl::StrCat("unsupported method '", callee.name, "'"));
    }
    if (callee.kind == Expr::kName && !HasFunction(callee.name)) {
      return Error(e.line, absl::StrCat("unsupported function '", callee.name, "'"));
    }
    if (callee.kind != Expr::kAttr && callee.kind != Expr::kName) {
      return Error(e.line, "only names and methods can be called");
    }
  }
  for (const ExprPtr& a : e.args) {
    if (a != nullptr) RETURN_IF_ERROR(CheckNames(*a));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ExprPtr> ParseExpr(absl::string_view text, int line) {
  ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(text, line));
  ExprParser p(std::move(tokens), line);
  ASSIGN_OR_RETURN(ExprPtr e, p.Whole());
  RETURN_IF_ERROR(CheckNames(*e));
  return e;
}

}  // namespace mcserve::http::jinja
