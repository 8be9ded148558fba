// Evaluating the expressions of the chat-template Jinja subset (jinja_expr.h)
// against a Scope: values, filters, tests, methods and operators as Jinja2 has them.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
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
namespace {

// Bounds on what a template may build (a template is the model directory's,
// but its loops and strings are driven by requests).
constexpr double kMaxValueBytes = 8 << 20;
constexpr double kMaxRangeItems = 1 << 20;

// json.dumps(v, ensure_ascii=False): Python's separators ", " and ": ".
std::string PyJson(const json& v) {
  if (v.is_array()) {
    std::vector<std::string> items;
    for (const json& e : v) items.push_back(PyJson(e));
    return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
  }
  if (v.is_object()) {
    std::vector<std::string> items;
    for (auto it = v.begin(); it != v.end(); ++it) {
      items.push_back(absl::StrCat(json(it.key()).dump(), ": ", PyJson(it.value())));
    }
    return absl::StrCat("{", absl::StrJoin(items, ", "), "}");
  }
  return v.dump(-1, ' ', false, json::error_handler_t::replace);
}

absl::StatusOr<json> Defined(const Expr& e, Scope& scope, absl::string_view what) {
  ASSIGN_OR_RETURN(Value v, Eval(e, scope));
  if (v.undefined) {
    return Error(e.line, absl::StrCat(what, ": ", e.kind == Expr::kName ? e.name : "a value",
                                      " is undefined"));
  }
  return v.v;
}

absl::StatusOr<Value> Index(const json& obj, const json& key, int line) {
  if (obj.is_object()) {
    if (!key.is_string()) return Value::Undefined();
    auto it = obj.find(key.get<std::string>());
    return it == obj.end() ? Value::Undefined() : Value{*it};
  }
  if ((obj.is_array() || obj.is_string()) && key.is_number_integer()) {
    const int64_t n = obj.is_array()
                          ? static_cast<int64_t>(obj.size())
                          : static_cast<int64_t>(obj.get_ref<const std::string&>().size());
    int64_t i = key.get<int64_t>();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::Undefined();
    if (obj.is_array()) return Value{obj[static_cast<size_t>(i)]};
    return Value{std::string(1, obj.get_ref<const std::string&>()[static_cast<size_t>(i)])};
  }
  if (obj.is_null() || obj.is_boolean() || obj.is_number() || obj.is_array() || obj.is_string()) {
    return Value::Undefined();
  }
  return Error(line, "cannot index this value");
}

std::string Strip(const std::string& s, absl::string_view how, const json& chars) {
  const std::string set = chars.is_string() ? chars.get<std::string>() : " \t\n\r\v\f";
  size_t b = 0, e = s.size();
  if (how != "rstrip")
    b = s.find_first_not_of(set) == std::string::npos ? s.size() : s.find_first_not_of(set);
  if (how != "lstrip") {
    const size_t last = s.find_last_not_of(set);
    e = last == std::string::npos ? 0 : last + 1;
  }
  return b >= e ? "" : s.substr(b, e - b);
}

std::string Title(std::string s) {
  bool start = true;
  for (char& c : s) {
    c = start ? absl::ascii_toupper(c) : absl::ascii_tolower(c);
    start = !absl::ascii_isalnum(c);
  }
  return s;
}

absl::StatusOr<Value> Method(const Expr& call, const json& obj, const std::string& name,
                             const std::vector<json>& a) {
  auto arg = [&a](size_t i) { return i < a.size() ? a[i] : json(); };
  if (obj.is_string()) {
    const std::string& s = obj.get_ref<const std::string&>();
    if (name == "strip" || name == "lstrip" || name == "rstrip")
      return Value{Strip(s, name, arg(0))};
    if (name == "upper") return Value{absl::AsciiStrToUpper(s)};
    if (name == "lower") return Value{absl::AsciiStrToLower(s)};
    if (name == "title") return Value{Title(s)};
    if (name == "capitalize") {
      std::string out = absl::AsciiStrToLower(s);
      if (!out.empty()) out[0] = absl::ascii_toupper(out[0]);
      return Value{out};
    }
    if ((name == "startswith" || name == "endswith") && arg(0).is_string()) {
      const std::string p = arg(0).get<std::string>();
      return Value{name == "startswith" ? absl::StartsWith(s, p) : absl::EndsWith(s, p)};
    }
    if (name == "split") {
      json parts = json::array();
      if (arg(0).is_string()) {
        for (absl::string_view p : absl::StrSplit(s, arg(0).get<std::string>()))
          parts.push_back(std::string(p));
      } else {
        for (absl::string_view p :
             absl::StrSplit(s, absl::ByAnyChar(" \t\n\r"), absl::SkipEmpty())) {
          parts.push_back(std::string(p));
        }
      }
      return Value{parts};
    }
    if (name == "replace" && arg(0).is_string() && arg(1).is_string()) {
      return Value{
          absl::StrReplaceAll(s, {{arg(0).get<std::string>(), arg(1).get<std::string>()}})};
    }
  }
  if (obj.is_object()) {
    if (name == "get") {
      auto it = arg(0).is_string() ? obj.find(arg(0).get<std::string>()) : obj.end();
      return it != obj.end() ? Value{*it} : Value{arg(1)};
    }
    if (name == "keys" || name == "values" || name == "items") {
      json out = json::array();
      for (auto it = obj.begin(); it != obj.end(); ++it) {
        if (name == "keys") out.push_back(it.key());
        if (name == "values") out.push_back(it.value());
        if (name == "items") out.push_back(json::array({it.key(), it.value()}));
      }
      return Value{out};
    }
  }
  return Error(call.line, absl::StrCat("unsupported method '", name, "'"));
}

absl::StatusOr<Value> Filter(const Expr& e, const Value& x, const std::vector<json>& a) {
  const std::string& f = e.name;
  auto arg = [&a](size_t i) { return i < a.size() ? a[i] : json(); };
  if (f == "default" || f == "d") {
    const bool falsy_too = arg(1).is_boolean() && arg(1).get<bool>();
    return x.undefined || (falsy_too && !Truthy(x)) ? Value{arg(0)} : x;
  }
  if (x.undefined) return Error(e.line, absl::StrCat("filter '", f, "' of an undefined value"));
  const json& v = x.v;
  if (f == "string") return Value{Str(x)};
  if (f == "tojson") return Value{PyJson(v)};
  if (f == "length" || f == "count") {
    if (v.is_string()) return Value{static_cast<int64_t>(v.get_ref<const std::string&>().size())};
    if (v.is_array() || v.is_object()) return Value{static_cast<int64_t>(v.size())};
  }
  if (f == "list") return Value{json(Items(v))};
  if (f == "first" || f == "last") {
    std::vector<json> items = Items(v);
    if (items.empty()) return Value::Undefined();
    return Value{f == "first" ? items.front() : items.back()};
  }
  if (f == "join") {
    std::vector<std::string> parts;
    for (const json& i : Items(v)) parts.push_back(Str(Value{i}));
    return Value{absl::StrJoin(parts, arg(0).is_string() ? arg(0).get<std::string>() : "")};
  }
  if (v.is_string()) {
    static const char* const kStringFilters[] = {"trim", "upper", "lower", "capitalize", "title"};
    for (const char* name : kStringFilters) {
      if (f == name) return Method(e, v, f == "trim" ? "strip" : f, a);
    }
  }
  return Error(e.line, absl::StrCat("unsupported filter '", f, "' here"));
}

using TypeTest = bool (*)(const json&);

// The tests on a defined value's type (false for an undefined one).
const absl::flat_hash_map<std::string, TypeTest>& TypeTests() {
  static const auto* const kTests = new absl::flat_hash_map<std::string, TypeTest>{
      {"none", [](const json& v) { return v.is_null(); }},
      {"string", [](const json& v) { return v.is_string(); }},
      {"number", [](const json& v) { return v.is_number(); }},
      {"integer", [](const json& v) { return v.is_number_integer(); }},
      {"float", [](const json& v) { return v.is_number_float(); }},
      {"boolean", [](const json& v) { return v.is_boolean(); }},
      {"mapping", [](const json& v) { return v.is_object(); }},
      {"sequence", [](const json& v) { return v.is_array() || v.is_string() || v.is_object(); }},
      {"iterable", [](const json& v) { return v.is_array() || v.is_string() || v.is_object(); }},
      {"true", [](const json& v) { return v.is_boolean() && v.get<bool>(); }},
      {"false", [](const json& v) { return v.is_boolean() && !v.get<bool>(); }}};
  return *kTests;
}

absl::StatusOr<Value> Test(const Expr& e, const Value& x) {
  const std::string& t = e.name;
  const json& v = x.v;
  bool r;
  if (t == "defined" || t == "undefined") {
    r = x.undefined == (t == "undefined");
  } else if (t == "even" || t == "odd") {
    if (x.undefined || !v.is_number_integer()) return Error(e.line, "'" + t + "' needs an integer");
    r = (v.get<int64_t>() % 2 == 0) == (t == "even");
  } else if (auto it = TypeTests().find(t); it != TypeTests().end()) {
    r = !x.undefined && it->second(v);
  } else {
    return Error(e.line, absl::StrCat("unsupported test '", t, "'"));
  }
  return Value{r != e.negate};
}

absl::StatusOr<Value> BinaryOp(const Expr& e, const Value& l, const Value& r) {
  const std::string& op = e.name;
  if (op == "~") return Value{Str(l) + Str(r)};
  if (op == "==" || op == "!=") {
    const bool eq = l.undefined || r.undefined ? l.undefined == r.undefined : l.v == r.v;
    return Value{eq == (op == "==")};
  }
  if (op == "in") {
    bool in = false;
    if (r.v.is_string() && l.v.is_string()) {
      in = absl::StrContains(r.v.get<std::string>(), l.v.get<std::string>());
    } else if (r.v.is_object() && l.v.is_string()) {
      in = r.v.contains(l.v.get<std::string>());
    } else if (r.v.is_array()) {
      for (const json& i : r.v) in = in || i == l.v;
    } else {
      return Error(e.line, "'in' needs a string, list or mapping on its right");
    }
    return Value{in != e.negate};
  }
  if (l.undefined || r.undefined)
    return Error(e.line, absl::StrCat("'", op, "' of an undefined value"));
  const json& a = l.v;
  const json& b = r.v;
  if (op == "+" && a.is_string() && b.is_string())
    return Value{a.get<std::string>() + b.get<std::string>()};
  if (op == "+" && a.is_array() && b.is_array()) {
    json out = a;
    for (const json& i : b) out.push_back(i);
    return Value{out};
  }
  if (op == "<" || op == ">" || op == "<=" || op == ">=") {
    if (!((a.is_number() && b.is_number()) || (a.is_string() && b.is_string()))) {
      return Error(e.line, absl::StrCat("'", op, "' needs two numbers or two strings"));
    }
    const bool lt = a < b, gt = b < a;
    return Value{op == "<" ? lt : op == ">" ? gt : op == "<=" ? !gt : !lt};
  }
  if (op == "*" && (a.is_string() || b.is_string()) &&
      (a.is_number_integer() || b.is_number_integer())) {
    const std::string& str = (a.is_string() ? a : b).get_ref<const std::string&>();
    const int64_t times = (a.is_string() ? b : a).get<int64_t>();
    if (times > 0 &&
        static_cast<double>(str.size()) * static_cast<double>(times) > kMaxValueBytes) {
      return Error(e.line, "string repetition too long");
    }
    std::string out;
    for (int64_t i = 0; i < times; ++i) out += str;
    return Value{out};
  }
  if (!a.is_number() || !b.is_number() || a.is_boolean() || b.is_boolean()) {
    return Error(e.line, absl::StrCat("'", op, "' needs numbers"));
  }
  const bool ints = a.is_number_integer() && b.is_number_integer();
  if (ints && op != "/") {
    const int64_t x = a.get<int64_t>(), y = b.get<int64_t>();
    if ((op == "%" || op == "//") && y == 0) return Error(e.line, "division by zero");
    int64_t r = 0;
    const bool overflow = op == "+"   ? __builtin_add_overflow(x, y, &r)
                          : op == "-" ? __builtin_sub_overflow(x, y, &r)
                          : op == "*" ? __builtin_mul_overflow(x, y, &r)
                                      : (x == INT64_MIN && y == -1);
    if (overflow) return Error(e.line, "integer overflow");
    if (op == "+" || op == "-" || op == "*") return Value{r};
    const int64_t q = x / y - ((x % y != 0 && ((x < 0) != (y < 0))) ? 1 : 0);  // floor
    return Value{op == "//" ? q : x - q * y};
  }
  const double x = a.get<double>(), y = b.get<double>();
  if ((op == "/" || op == "%" || op == "//") && y == 0) return Error(e.line, "division by zero");
  if (op == "+") return Value{x + y};
  if (op == "-") return Value{x - y};
  if (op == "*") return Value{x * y};
  if (op == "/") return Value{x / y};
  if (op == "//") return Value{std::floor(x / y)};
  return Value{x - std::floor(x / y) * y};
}

}  // namespace

bool HasFilter(const std::string& name) {
  static const auto* const kFilters = new absl::flat_hash_set<std::string>{
      "default", "d",    "string", "tojson", "length", "count",      "list", "first",
      "last",    "join", "trim",   "upper",  "lower",  "capitalize", "title"};
  return kFilters->contains(name);
}

bool HasTest(const std::string& name) {
  return name == "defined" || name == "undefined" || name == "even" || name == "odd" ||
         TypeTests().contains(name);
}

bool HasMethod(const std::string& name) {
  static const auto* const kMethods = new absl::flat_hash_set<std::string>{
      "strip",    "lstrip", "rstrip",  "upper", "lower", "title",  "capitalize", "startswith",
      "endswith", "split",  "replace", "get",   "keys",  "values", "items"};
  return kMethods->contains(name);
}

bool HasFunction(const std::string& name) { return name == "raise_exception" || name == "range"; }

bool Truthy(const Value& x) {
  if (x.undefined || x.v.is_null()) return false;
  if (x.v.is_boolean()) return x.v.get<bool>();
  if (x.v.is_number()) return x.v.get<double>() != 0;
  if (x.v.is_string()) return !x.v.get_ref<const std::string&>().empty();
  return !x.v.empty();
}

// As Python's str() of the value.
std::string Str(const Value& x) {
  if (x.undefined) return "";
  const json& v = x.v;
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "None";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_number_integer()) return v.dump();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::floor(d) == d && std::fabs(d) < 1e16) return absl::StrFormat("%.1f", d);
    for (int digits = 1;; ++digits) {  // Python's repr: the shortest that reads back
      const std::string r = absl::StrFormat("%.*g", digits, d);
      if (digits >= 17 || std::strtod(r.c_str(), nullptr) == d) return r;
    }
  }
  return PyJson(v);
}

std::vector<json> Items(const json& v) {
  std::vector<json> out;
  if (v.is_array()) {
    for (const json& e : v) out.push_back(e);
  } else if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) out.push_back(it.key());
  } else if (v.is_string()) {
    for (char c : v.get<std::string>()) out.push_back(std::string(1, c));
  }
  return out;
}

absl::StatusOr<Value> Eval(const Expr& e, Scope& scope) {
  switch (e.kind) {
    case Expr::kLiteral:
      return e.name == "undefined" ? Value::Undefined() : Value{e.literal};
    case Expr::kName:
      return scope.Get(e.name);
    case Expr::kAttr:
    case Expr::kIndex: {
      ASSIGN_OR_RETURN(json obj, Defined(*e.args[0], scope, "subscript"));
      json key = e.name;
      if (e.kind == Expr::kIndex) {
        ASSIGN_OR_RETURN(key, Defined(*e.args[1], scope, "subscript"));
      }
      return Index(obj, key, e.line);
    }
    case Expr::kSlice: {
      ASSIGN_OR_RETURN(json obj, Defined(*e.args[0], scope, "slice"));
      if (!obj.is_array() && !obj.is_string()) return Error(e.line, "only lists and strings slice");
      const int64_t n = obj.is_array()
                            ? static_cast<int64_t>(obj.size())
                            : static_cast<int64_t>(obj.get_ref<const std::string&>().size());
      int64_t bounds[2] = {0, n};
      for (int k = 0; k < 2; ++k) {
        if (e.args[k + 1] == nullptr) continue;
        ASSIGN_OR_RETURN(json b, Defined(*e.args[k + 1], scope, "slice"));
        if (!b.is_number_integer()) return Error(e.line, "slice bounds must be integers");
        int64_t i = b.get<int64_t>();
        if (i < 0) i += n;
        bounds[k] = std::clamp<int64_t>(i, 0, n);
      }
      if (obj.is_string()) {
        const std::string& s = obj.get_ref<const std::string&>();
        return Value{bounds[1] > bounds[0] ? s.substr(bounds[0], bounds[1] - bounds[0]) : ""};
      }
      json out = json::array();
      for (int64_t i = bounds[0]; i < bounds[1]; ++i) out.push_back(obj[static_cast<size_t>(i)]);
      return Value{out};
    }
    case Expr::kCall: {
      std::vector<json> args;
      for (size_t i = 1; i < e.args.size(); ++i) {
        ASSIGN_OR_RETURN(Value a, Eval(*e.args[i], scope));
        args.push_back(a.v);
      }
      const Expr& callee = *e.args[0];
      if (callee.kind == Expr::kAttr) {
        ASSIGN_OR_RETURN(json obj, Defined(*callee.args[0], scope, "method call"));
        return Method(e, obj, callee.name, args);
      }
      if (callee.kind == Expr::kName && callee.name == "raise_exception") {
        return absl::InvalidArgumentError(args.empty() ? "the chat template refused the messages"
                                                       : Str(Value{args[0]}));
      }
      if (callee.kind == Expr::kName && callee.name == "range") {
        // range(stop), range(start, stop[, step]), as Python's.
        for (const json& a : args) {
          if (!a.is_number_integer()) return Error(e.line, "range() takes integers");
        }
        if (args.empty() || args.size() > 3) return Error(e.line, "range() takes 1 to 3 integers");
        const int64_t from = args.size() > 1 ? args[0].get<int64_t>() : 0;
        const int64_t to = args.size() > 1 ? args[1].get<int64_t>() : args[0].get<int64_t>();
        const int64_t step = args.size() > 2 ? args[2].get<int64_t>() : 1;
        if (step == 0) return Error(e.line, "range() step must not be zero");
        const double count = std::ceil((static_cast<double>(to) - static_cast<double>(from)) /
                                       static_cast<double>(step));
        if (count > kMaxRangeItems) return Error(e.line, "range() too long");
        json out = json::array();
        for (int64_t i = from; step > 0 ? i < to : i > to; i += step) out.push_back(i);
        return Value{out};
      }
      return Error(e.line, absl::StrCat("unsupported function '", callee.name, "'"));
    }
    case Expr::kFilter: {
      ASSIGN_OR_RETURN(Value x, Eval(*e.args[0], scope));
      std::vector<json> args;
      for (size_t i = 1; i < e.args.size(); ++i) {
        ASSIGN_OR_RETURN(Value a, Eval(*e.args[i], scope));
        args.push_back(a.v);
      }
      return Filter(e, x, args);
    }
    case Expr::kTest: {
      ASSIGN_OR_RETURN(Value x, Eval(*e.args[0], scope));
      return Test(e, x);
    }
    case Expr::kNeg: {
      ASSIGN_OR_RETURN(json x, Defined(*e.args[0], scope, "'-'"));
      if (x.is_number_integer()) {
        if (x.get<int64_t>() == INT64_MIN) return Error(e.line, "integer overflow");
        return Value{-x.get<int64_t>()};
      }
      if (x.is_number()) return Value{-x.get<double>()};
      return Error(e.line, "'-' needs a number");
    }
    case Expr::kNot: {
      ASSIGN_OR_RETURN(Value x, Eval(*e.args[0], scope));
      return Value{!Truthy(x)};
    }
    case Expr::kAnd:
    case Expr::kOr: {
      ASSIGN_OR_RETURN(Value l, Eval(*e.args[0], scope));
      if (Truthy(l) == (e.kind == Expr::kOr)) return l;
      return Eval(*e.args[1], scope);
    }
    case Expr::kCond: {
      ASSIGN_OR_RETURN(Value c, Eval(*e.args[0], scope));
      return Eval(*e.args[Truthy(c) ? 1 : 2], scope);
    }
    case Expr::kBinary: {
      ASSIGN_OR_RETURN(Value l, Eval(*e.args[0], scope));
      ASSIGN_OR_RETURN(Value r, Eval(*e.args[1], scope));
      return BinaryOp(e, l, r);
    }
    case Expr::kList:
    case Expr::kDict: {
      json out = e.kind == Expr::kList ? json::array() : json::object();
      for (size_t i = 0; i < e.args.size(); ++i) {
        ASSIGN_OR_RETURN(Value a, Eval(*e.args[i], scope));
        if (e.kind == Expr::kList) {
          out.push_back(a.v);
          continue;
        }
        ASSIGN_OR_RETURN(Value v, Eval(*e.args[++i], scope));
        if (!a.v.is_string()) return Error(e.line, "dict keys must be strings");
        out[a.v.get<std::string>()] = v.v;
      }
      return Value{out};
    }
  }
  return Error(e.line, "bad expression");
}

}  // namespace mcserve::http::jinja
