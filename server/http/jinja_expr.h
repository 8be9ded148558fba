// Expressions of the chat-template Jinja subset (chat_template.h lists
// what is supported): parsed once, evaluated against a Scope of JSON values.
// Internal to the chat template renderer.
#ifndef MCSERVE_SERVER_HTTP_JINJA_EXPR_H_
#define MCSERVE_SERVER_HTTP_JINJA_EXPR_H_

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mcserve::http::jinja {

using json = nlohmann::ordered_json;  // keys in the order written, as in Python

// INVALID_ARGUMENT "chat template line N: what".
absl::Status Error(int line, absl::string_view what);

struct Expr {
  enum Kind {
    kLiteral,
    kName,
    kAttr,
    kIndex,
    kSlice,
    kCall,
    kFilter,
    kTest,
    kNeg,
    kNot,
    kBinary,
    kAnd,
    kOr,
    kCond,
    kList,
    kDict
  } kind;
  json literal;
  std::string name;     // name, attribute, operator, filter or test
  bool negate = false;  // is not, not in
  std::vector<std::unique_ptr<Expr>> args;
  int line = 0;
};
using ExprPtr = std::unique_ptr<Expr>;

// A value: JSON, or Jinja's undefined (renders as "", is false).
struct Value {
  json v;
  bool undefined = false;
  static Value Undefined() { return Value{nullptr, true}; }
};

// Variables: the render context, then one frame per loop iteration (a
// loop's `set` stays in the loop, as in Jinja).
class Scope {
 public:
  explicit Scope(const json& globals) : globals_(globals) { frames_.emplace_back(); }
  void Push() { frames_.emplace_back(); }
  void Pop() { frames_.pop_back(); }
  void Set(const std::string& name, json v) { frames_.back()[name] = std::move(v); }
  Value Get(const std::string& name) const {
    for (auto it = frames_.rbegin(); it != frames_.rend(); ++it) {
      if (auto f = it->find(name); f != it->end()) return Value{f->second};
    }
    if (auto g = globals_.find(name); g != globals_.end()) return Value{*g};
    return Value::Undefined();
  }

 private:
  const json& globals_;
  std::vector<std::map<std::string, json>> frames_;
};

// INVALID_ARGUMENT naming `line` for a syntax error.
absl::StatusOr<ExprPtr> ParseExpr(absl::string_view text, int line);
absl::StatusOr<Value> Eval(const Expr& e, Scope& scope);

// The filters, tests, methods and functions Eval has (the parser refuses a
// template naming any other).
bool HasFilter(const std::string& name);
bool HasTest(const std::string& name);
bool HasMethod(const std::string& name);
bool HasFunction(const std::string& name);

bool Truthy(const Value& x);
// As Python's str() (True, None, 2.5, lists and dicts as JSON).
std::string Str(const Value& x);
// What `for` iterates: a list's items, a dict's keys, a string's characters.
std::vector<json> Items(const json& v);

}  // namespace mcserve::http::jinja

#endif  // MCSERVE_SERVER_HTTP_JINJA_EXPR_H_
