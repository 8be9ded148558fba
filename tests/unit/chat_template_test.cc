// mcserve's chat-template renderer against Jinja2 itself (Debian's
// python3-jinja2, set up as transformers' apply_chat_template sets it up:
// tests/chat/render_jinja.py): templates in the shapes common model families
// use (written for this test: ChatML-style markers, [INST] blocks, role tags,
// model turns) and
// two that exercise whitespace control and expressions, over several
// conversations, must render byte for byte the same, and refuse the same.
#include "server/http/chat_template.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "server/util/text_file.h"

namespace mcserve::http {
namespace {

using ojson = nlohmann::ordered_json;

#ifndef MCSERVE_CHAT_TEST_DIR
#error "MCSERVE_CHAT_TEST_DIR must name tests/chat"
#endif
const std::string kDir = MCSERVE_CHAT_TEST_DIR;

std::string Template(const std::string& name) {
  absl::StatusOr<std::string> t = ReadTextFile(kDir + "/templates/" + name + ".jinja");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *t : "";
}

// Jinja2's rendering of each case: {"text"} or {"error"}.
std::vector<ojson> Golden(const ojson& cases) {
  const std::string in = ::testing::TempDir() + "/chat_cases.json";
  const std::string out = ::testing::TempDir() + "/chat_golden.json";
  std::ofstream(in) << cases.dump();
  const std::string cmd = "/usr/bin/python3 " + kDir + "/render_jinja.py < " + in + " > " + out;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  absl::StatusOr<std::string> text = ReadTextFile(out);
  if (!text.ok()) return {};
  return ojson::parse(*text).get<std::vector<ojson>>();
}

ojson Messages(const std::vector<std::pair<std::string, std::string>>& turns) {
  ojson m = ojson::array();
  for (const auto& [role, content] : turns) m.push_back({{"role", role}, {"content", content}});
  return m;
}

ojson Context(ojson messages, bool generation_prompt) {
  return {{"messages", std::move(messages)},
          {"bos_token", "<s>"},
          {"eos_token", "</s>"},
          {"add_generation_prompt", generation_prompt}};
}

TEST(ChatTemplateTest, RendersAsJinja2Does) {
  const std::vector<ojson> conversations = {
      Messages({{"user", "Hello there"}}),
      Messages({{"system", "You are terse."},
                {"user", "Hi"},
                {"assistant", " Hello! "},
                {"user", "What is 2+2?\nThink."}}),
      Messages({{"user", "a"}, {"assistant", "b"}, {"user", "c"}, {"assistant", "d"}}),
      Messages({{"user", "one"}, {"user", "two"}}),  // not alternating
      Messages({{"system", "only a system prompt"}}),
      Messages({}),
  };
  ojson cases = ojson::array();
  std::vector<std::string> labels;
  for (const char* name :
       {"im_markers", "inst_blocks", "role_tags", "model_turns", "whitespace", "expressions"}) {
    for (size_t c = 0; c < conversations.size(); ++c) {
      for (bool gen : {false, true}) {
        cases.push_back(
            {{"template", Template(name)}, {"context", Context(conversations[c], gen)}});
        labels.push_back(std::string(name) + " conversation " + std::to_string(c) +
                         (gen ? " +generation prompt" : ""));
      }
    }
  }
  const std::vector<ojson> golden = Golden(cases);
  ASSERT_EQ(golden.size(), cases.size());
  int rendered = 0, refused = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(cases[i]["template"].get<std::string>());
    ASSERT_TRUE(t.ok()) << labels[i] << ": " << t.status();
    absl::StatusOr<std::string> got = t->Render(cases[i]["context"]);
    if (golden[i].contains("error")) {
      ++refused;
      ASSERT_FALSE(got.ok()) << labels[i] << " rendered:\n" << *got;
      EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument) << labels[i];
      // raise_exception's message as the template wrote it; the renderer's
      // own errors (an undefined subscript...) in its words, with the line.
      const std::string message(got.status().message());
      if (message.rfind("chat template line ", 0) != 0) {
        EXPECT_EQ(message, golden[i]["error"].get<std::string>()) << labels[i];
      }
      continue;
    }
    ++rendered;
    ASSERT_TRUE(got.ok()) << labels[i] << ": " << got.status();
    EXPECT_EQ(*got, golden[i]["text"].get<std::string>()) << labels[i];
  }
  // Both outcomes are exercised: inst_blocks and model_turns refuse some
  // conversations.
  EXPECT_GT(rendered, 50);
  EXPECT_GE(refused, 4);
}

TEST(ChatTemplateTest, UnsupportedConstructsAreRefusedAtParseNamingTheLine) {
  struct Case {
    std::string source, message;
  };
  for (const Case& c : std::vector<Case>{
           {"a\n{% macro f() %}x{% endmacro %}",
            "chat template line 2: unsupported statement 'macro'"},
           {"{% for a, b in x %}{% endfor %}",
            "chat template line 1: unsupported loop target 'a, b' (one name only)"},
           {"{% for m in messages if m %}{% endfor %}",
            "chat template line 1: loop filters ('for x in y if c') are not supported"},
           {"{% if x %}never closed", "chat template line 1: 'if' without 'endif'"},
           {"{% endfor %}", "chat template line 1: 'endfor' without its opening"},
           {"\n\n{{ a +* b }}", "chat template line 3: unexpected '*'"},
           {"{{ 'open }}", "chat template line 1: a tag is not closed"},
           {"{% set ns.x = 1 %}", "chat template line 1: unsupported assignment target 'ns.x'"},
           {"{{ x | frobnicate }}", "chat template line 1: unsupported filter 'frobnicate'"},
           {"{% if x is divisibleby %}{% endif %}",
            "chat template line 1: unsupported test 'divisibleby'"},
           {"{{ strftime_now('%Y') }}",
            "chat template line 1: unsupported function 'strftime_now'"},
           {"{% set ns = namespace(a=1) %}",
            "chat template line 1: unsupported function 'namespace'"},
           {"{% for m in messages %}{{ m.content.frob() }}{% endfor %}",
            "chat template line 1: unsupported method 'frob'"},
       }) {
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(c.source);
    ASSERT_FALSE(t.ok()) << c.source;
    EXPECT_EQ(std::string(t.status().message()), c.message) << c.source;
  }
  // Bounds: what a template builds is limited, and arithmetic does not wrap.
  for (const auto& [source, message] : std::vector<std::pair<std::string, std::string>>{
           {"{{ range(10000000000) | length }}", "chat template line 1: range() too long"},
           {"{{ 'x' * 100000000000 }}", "chat template line 1: string repetition too long"},
           {"{{ 9223372036854775807 + 1 }}", "chat template line 1: integer overflow"},
           {"{{ range(0, 3, 0) }}", "chat template line 1: range() step must not be zero"},
       }) {
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(source);
    ASSERT_TRUE(t.ok()) << source << ": " << t.status();
    EXPECT_EQ(std::string(t->Render(ojson::object()).status().message()), message) << source;
  }
  absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse("{{ range(5, -1, -2) | join(',') }}");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t->Render(ojson::object()), "5,3,1");
}

TEST(ChatTemplateTest, LoadsAModelDirectorysTemplateAndSpecialTokens) {
  const std::string dir = ::testing::TempDir() + "/chat_model";
  std::system(("rm -rf " + dir + " && mkdir -p " + dir).c_str());
  absl::StatusOr<std::optional<ModelChatTemplate>> none = LoadChatTemplate(dir);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());

  std::ofstream(dir + "/tokenizer_config.json")
      << R"({"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
             "chat_template": [{"name": "tool_use", "template": "T"},
                               {"name": "default", "template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"}]})";
  absl::StatusOr<std::optional<ModelChatTemplate>> m = LoadChatTemplate(dir);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(m->has_value());
  EXPECT_EQ((*m)->file, dir + "/tokenizer_config.json");
  EXPECT_EQ((*m)->bos_token, "<s>");
  EXPECT_EQ((*m)->eos_token, "</s>");
  EXPECT_EQ(*(*m)->tmpl.Render({{"bos_token", "<s>"}, {"messages", Messages({{"user", "hi"}})}}),
            "<s>hi");

  std::ofstream(dir + "/chat_template.jinja") << "{{ messages | length }}";  // takes precedence
  m = LoadChatTemplate(dir);
  ASSERT_TRUE(m.ok() && m->has_value()) << m.status();
  EXPECT_EQ((*m)->file, dir + "/chat_template.jinja");
  EXPECT_EQ(*(*m)->tmpl.Render({{"messages", Messages({{"user", "hi"}})}}), "1");

  std::ofstream(dir + "/chat_template.jinja") << "{% include 'x' %}";
  m = LoadChatTemplate(dir);
  EXPECT_EQ(m.status().message(),
            dir + "/chat_template.jinja: chat template line 1: unsupported statement 'include'");
}

}  // namespace
}  // namespace mcserve::http
