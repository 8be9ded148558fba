// mcserve-cli: talk to an mcserve server from the shell.
//
//   mcserve-cli [--addr=HOST:PORT] generate [--max_tokens=N ...] "prompt"
//   mcserve-cli session create [ID] | get ID | delete ID | list | fork ID [NEW_ID] |
//                       export ID FILE | import FILE [ID]
//   mcserve-cli tokenize [--add_bos] "text" | -     (prints the ids)
//   mcserve-cli detokenize ID...                      (prints the text)
//   mcserve-cli health | info | status | abort REQUEST_ID
//
// Exit codes: 0 ok; 1 other error; 2 usage; 3 server unreachable or timed
// out; 4 request rejected (bad argument, unknown or busy session);
// 5 server full (retry later); 130 interrupted.
#include <google/protobuf/text_format.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <mutex>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "client/channel.h"
#include "client/mcserve_client.h"
#include "server/util/flags_help.h"

ABSL_FLAG(std::string, addr, "", "Server address (default $MCSERVE_ADDR or 127.0.0.1:50051)");
ABSL_FLAG(std::string, token_file, "",
          "Send the bearer token in this file (default: $MCSERVE_TOKEN, if set)");
ABSL_FLAG(std::string, tls_ca, "", "Connect over TLS, verifying the server against these PEM CAs");
ABSL_FLAG(std::string, tls_cert, "", "Mutual TLS: this client's PEM certificate chain");
ABSL_FLAG(std::string, tls_key, "", "Mutual TLS: the private key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "The name the server's certificate must carry (default: the host of --addr)");
ABSL_FLAG(std::optional<uint32_t>, max_tokens, std::nullopt, "Most tokens to generate");
ABSL_FLAG(std::optional<float>, temperature, std::nullopt, "Sampling temperature (0: greedy)");
ABSL_FLAG(std::optional<float>, top_p, std::nullopt, "Nucleus sampling mass");
ABSL_FLAG(uint32_t, top_k, 0, "Sample among the k most likely tokens (0: off)");
ABSL_FLAG(std::optional<uint64_t>, seed, std::nullopt, "Random seed");
ABSL_FLAG(std::string, session, "", "Continue this session");
ABSL_FLAG(std::vector<std::string>, stop, {}, "Stop strings, comma-separated");
ABSL_FLAG(bool, ignore_eos, false, "Keep generating after EOS");
ABSL_FLAG(std::optional<float>, repetition_penalty, std::nullopt,
          "vLLM's repetition penalty over prompt and output (1: off)");
ABSL_FLAG(float, presence_penalty, 0, "Subtracted once from every generated token's logit");
ABSL_FLAG(float, frequency_penalty, 0, "Subtracted per occurrence from generated tokens' logits");
ABSL_FLAG(uint32_t, min_tokens, 0, "No EOS, stop id or stop string before this many tokens");
ABSL_FLAG(std::vector<std::string>, logit_bias, {},
          "Token biases ID=BIAS, comma-separated (e.g. 257=-100)");
ABSL_FLAG(bool, include_stop_str, false, "Keep a matched stop string in the output");
ABSL_FLAG(bool, logprobs, false, "Print each token's log-probability to stderr");
ABSL_FLAG(bool, prompt_logprobs, false,
          "Score the prompt: print each prompt token's log-probability, and their sum, to stderr "
          "(with --max_tokens=0, without generating)");
ABSL_FLAG(std::string, request_id, "", "Request id (for abort)");
ABSL_FLAG(double, timeout, 0, "Deadline in seconds (0: none)");
ABSL_FLAG(bool, add_bos, false, "tokenize: put the BOS id first");

namespace mcserve::client {
namespace {

constexpr int kUsage = 2;

int ExitCode(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 3;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 4;
    case absl::StatusCode::kResourceExhausted:
      return 5;
    case absl::StatusCode::kCancelled:
      return 130;
    default:
      return 1;
  }
}

int Report(const absl::Status& s) {
  if (s.ok()) return 0;
  std::cerr << "mcserve-cli: " << absl::StatusCodeToString(s.code()) << ": " << s.message() << "\n";
  if (s.code() == absl::StatusCode::kUnavailable) {
    std::cerr << "mcserve-cli: is the server running at " << absl::GetFlag(FLAGS_addr) << "?\n";
  }
  return ExitCode(s);
}

void Print(const google::protobuf::Message& m) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(m, &text);
  std::cout << text;
}

const char* ReasonName(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_EOS:
      return "eos";
    case v1::FINISH_REASON_CANCELLED:
      return "cancelled";
    case v1::FINISH_REASON_ABORTED:
      return "aborted";
    default:
      return "unspecified";
  }
}

// Ctrl-C cancels the stream cleanly instead of killing the process.
class InterruptCanceller {
 public:
  InterruptCanceller() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
    thread_ = std::thread([this] {
      int sig = 0;
      sigwait(&set_, &sig);
      std::lock_guard<std::mutex> l(mu_);
      if (done_) return;
      interrupted_ = true;
      if (ctx_ != nullptr) ctx_->TryCancel();
    });
  }
  ~InterruptCanceller() {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    pthread_kill(thread_.native_handle(), SIGINT);
    thread_.join();
  }
  void Watch(grpc::ClientContext* ctx) {
    std::lock_guard<std::mutex> l(mu_);
    ctx_ = ctx;
  }
  bool interrupted() {
    std::lock_guard<std::mutex> l(mu_);
    return interrupted_;
  }

 private:
  sigset_t set_;
  std::mutex mu_;
  grpc::ClientContext* ctx_ = nullptr;
  bool done_ = false;
  bool interrupted_ = false;
  std::thread thread_;
};

int Generate(Client& c, const std::vector<char*>& args) {
  if (args.size() > 1) {
    std::cerr << "usage: mcserve-cli generate [flags] [PROMPT | -]\n";
    return kUsage;
  }
  v1::GenerateRequest req;
  if (!args.empty()) {
    std::string prompt = args[0];
    if (prompt == "-") prompt.assign(std::istreambuf_iterator<char>(std::cin), {});
    req.set_text(prompt);
  }
  req.set_session_id(absl::GetFlag(FLAGS_session));
  req.set_request_id(absl::GetFlag(FLAGS_request_id));
  req.set_return_logprobs(absl::GetFlag(FLAGS_logprobs));
  if (absl::GetFlag(FLAGS_prompt_logprobs)) req.set_prompt_logprobs(0);
  v1::SamplingParams* sp = req.mutable_sampling_params();
  if (auto v = absl::GetFlag(FLAGS_max_tokens)) sp->set_max_tokens(*v);
  if (auto v = absl::GetFlag(FLAGS_temperature)) sp->set_temperature(*v);
  if (auto v = absl::GetFlag(FLAGS_top_p)) sp->set_top_p(*v);
  if (auto v = absl::GetFlag(FLAGS_seed)) sp->set_seed(*v);
  sp->set_top_k(absl::GetFlag(FLAGS_top_k));
  for (const std::string& s : absl::GetFlag(FLAGS_stop)) sp->add_stop(s);
  sp->set_ignore_eos(absl::GetFlag(FLAGS_ignore_eos));
  if (auto r = absl::GetFlag(FLAGS_repetition_penalty)) sp->set_repetition_penalty(*r);
  sp->set_presence_penalty(absl::GetFlag(FLAGS_presence_penalty));
  sp->set_frequency_penalty(absl::GetFlag(FLAGS_frequency_penalty));
  sp->set_min_tokens(absl::GetFlag(FLAGS_min_tokens));
  for (const std::string& kv : absl::GetFlag(FLAGS_logit_bias)) {
    const std::pair<std::string, std::string> parts = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    uint32_t id = 0;
    float bias = 0;
    if (!absl::SimpleAtoi(parts.first, &id) || !absl::SimpleAtof(parts.second, &bias)) {
      std::cerr << "--logit_bias: '" << kv << "' is not ID=BIAS\n";
      return kUsage;
    }
    (*sp->mutable_logit_bias())[id] = bias;
  }
  sp->set_include_stop_str_in_output(absl::GetFlag(FLAGS_include_stop_str));

  CallOptions opts;
  if (absl::GetFlag(FLAGS_timeout) > 0) opts.timeout = absl::Seconds(absl::GetFlag(FLAGS_timeout));
  InterruptCanceller interrupt;
  bool ends_with_newline = true;
  v1::GenerateResponse last;
  absl::Status s = c.Generate(
      req,
      [&](const v1::GenerateResponse& r) {
        if (r.prompt_logprobs_size() > 0) {
          double sum = 0;
          for (const v1::TokenLogprob& lp : r.prompt_logprobs()) {
            std::cerr << "[prompt token " << lp.token_id() << " logprob " << lp.logprob() << "]\n";
            sum += lp.logprob();
          }
          std::cerr << "[prompt logprob sum " << sum << " over " << r.prompt_logprobs_size()
                    << " tokens]\n";
        }
        std::cout << r.text() << std::flush;
        if (!r.text().empty()) ends_with_newline = r.text().back() == '\n';
        for (const v1::TokenLogprob& lp : r.logprobs()) {
          std::cerr << "[token " << lp.token_id() << " logprob " << lp.logprob() << "]\n";
        }
        last = r;
      },
      opts, [&interrupt](grpc::ClientContext* ctx) { interrupt.Watch(ctx); });
  if (!ends_with_newline) std::cout << "\n" << std::flush;
  if (interrupt.interrupted()) {
    std::cerr << "mcserve-cli: interrupted\n";
    return 130;
  }
  if (!s.ok()) return Report(s);
  const v1::Usage& u = last.usage();
  std::cerr << "[" << ReasonName(last.finish_reason()) << ": prompt " << u.prompt_tokens()
            << " tokens, generated " << u.completion_tokens() << ", session " << u.session_tokens()
            << " tokens, " << u.checkpoints() << " checkpoints; ";
  if (u.cached_prompt_tokens() > 0) {
    std::cerr << u.cached_prompt_tokens() << " prompt tokens from the prefix cache; ";
  }
  std::cerr << "request " << last.request_id() << "]\n";
  return 0;
}

int TokenizeCmd(Client& c, const std::vector<char*>& args) {
  if (args.size() != 1) {
    std::cerr << "usage: mcserve-cli tokenize [--add_bos] TEXT | -\n";
    return kUsage;
  }
  std::string text = args[0];
  if (text == "-") text.assign(std::istreambuf_iterator<char>(std::cin), {});
  auto ids = c.Tokenize(text, absl::GetFlag(FLAGS_add_bos));
  if (!ids.ok()) return Report(ids.status());
  for (size_t i = 0; i < ids->size(); ++i) std::cout << (i == 0 ? "" : " ") << (*ids)[i];
  std::cout << "\n";
  return 0;
}

int DetokenizeCmd(Client& c, const std::vector<char*>& args) {
  std::vector<uint32_t> ids;
  for (const char* a : args) {
    uint32_t id = 0;
    if (!absl::SimpleAtoi(a, &id)) {
      std::cerr << "mcserve-cli: detokenize: '" << a << "' is not a token id\n";
      return kUsage;
    }
    ids.push_back(id);
  }
  auto text = c.Detokenize(ids);
  if (!text.ok()) return Report(text.status());
  std::cout << *text << "\n";
  return 0;
}

int SessionCmd(Client& c, const std::vector<char*>& args) {
  const std::string verb = args.empty() ? "" : args[0];
  if (verb == "create" && args.size() <= 2) {
    auto s = c.CreateSession(args.size() == 2 ? args[1] : "");
    if (!s.ok()) return Report(s.status());
    std::cout << s->session_id() << "\n";
    return 0;
  }
  if (verb == "get" && args.size() == 2) {
    auto s = c.GetSession(args[1]);
    if (!s.ok()) return Report(s.status());
    Print(*s);
    return 0;
  }
  if (verb == "delete" && args.size() == 2) return Report(c.DeleteSession(args[1]));
  if (verb == "list" && args.size() == 1) {
    auto all = c.ListSessions();
    if (!all.ok()) return Report(all.status());
    for (const v1::Session& s : *all) {
      std::cout << s.session_id() << "\t" << s.num_tokens() << " tokens\t" << s.num_checkpoints()
                << " checkpoints\t" << s.checkpoint_bytes() << " bytes\tlast used "
                << absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                                    absl::FromUnixMillis(s.last_used_unix_ms()),
                                    absl::UTCTimeZone())
                << "\n";
    }
    return 0;
  }
  if (verb == "fork" && (args.size() == 2 || args.size() == 3)) {
    auto s = c.ForkSession(args[1], args.size() == 3 ? args[2] : "");
    if (!s.ok()) return Report(s.status());
    std::cout << s->session_id() << "\n";
    return 0;
  }
  if (verb == "export" && args.size() == 3) {
    auto bytes = c.ExportSession(args[1]);
    if (!bytes.ok()) return Report(bytes.status());
    std::ofstream out(args[2], std::ios::binary);
    out << *bytes;
    if (!out.flush()) return Report(absl::InternalError(absl::StrCat("cannot write ", args[2])));
    std::cout << bytes->size() << " bytes\n";
    return 0;
  }
  if (verb == "import" && (args.size() == 2 || args.size() == 3)) {
    std::ifstream in(args[1], std::ios::binary);
    if (!in) {
      std::cerr << "mcserve-cli: cannot read " << args[1] << "\n";
      return kUsage;
    }
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto s = c.ImportSession(bytes, args.size() == 3 ? args[2] : "");
    if (!s.ok()) return Report(s.status());
    std::cout << s->session_id() << "\n";
    return 0;
  }
  std::cerr
      << "usage: mcserve-cli session create [ID] | get ID | delete ID | list | fork ID [NEW_ID] |\n"
         "                          export ID FILE | import FILE [ID]\n";
  return kUsage;
}

int Run(int argc, char** argv) {
  SetFlagsHelp(
      "mcserve-cli [--addr=HOST:PORT] COMMAND\n"
      "  generate [--max_tokens=N --temperature=T --top_p=P --top_k=K --seed=S\n"
      "            --session=ID --stop=a,b --ignore_eos --logprobs --prompt_logprobs\n"
      "            --timeout=SEC] PROMPT|-\n"
      "  session create [ID] | get ID | delete ID | list | fork ID [NEW_ID] | export ID FILE |\n"
      "          import FILE [ID]\n"
      "  tokenize [--add_bos] TEXT|- | detokenize ID...\n"
      "  health | info | status | abort REQUEST_ID\n"
      "Exit codes: 0 ok, 1 error, 2 usage, 3 unreachable/timeout, 4 rejected, 5 server full,\n"
      "130 interrupted.",
      {"client/cli.cc"});
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  args.erase(args.begin());  // program name
  if (absl::GetFlag(FLAGS_addr).empty()) {
    const char* env = std::getenv("MCSERVE_ADDR");
    absl::SetFlag(&FLAGS_addr, env != nullptr ? env : "127.0.0.1:50051");
  }
  if (args.empty()) {
    std::cerr << absl::ProgramUsageMessage() << "\n";
    return kUsage;
  }
  client::TransportOptions transport;
  transport.ca_file = absl::GetFlag(FLAGS_tls_ca);
  transport.cert_file = absl::GetFlag(FLAGS_tls_cert);
  transport.key_file = absl::GetFlag(FLAGS_tls_key);
  transport.server_name = absl::GetFlag(FLAGS_tls_server_name);
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      client::MakeChannel(absl::GetFlag(FLAGS_addr), transport);
  if (!channel.ok()) {
    std::cerr << "mcserve-cli: " << channel.status().message() << "\n";
    return kUsage;
  }
  Client c(*std::move(channel));
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    std::ifstream in(absl::GetFlag(FLAGS_token_file));
    std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && token.empty()) {
      std::cerr << "mcserve-cli: cannot read " << absl::GetFlag(FLAGS_token_file) << "\n";
      return kUsage;
    }
    c.set_bearer_token(std::string(absl::StripAsciiWhitespace(token)));
  } else if (const char* t = std::getenv("MCSERVE_TOKEN"); t != nullptr) {
    c.set_bearer_token(t);
  }
  const std::string cmd = args[0];
  const std::vector<char*> rest(args.begin() + 1, args.end());
  if (cmd == "generate") return Generate(c, rest);
  if (cmd == "session") return SessionCmd(c, rest);
  if (cmd == "tokenize") return TokenizeCmd(c, rest);
  if (cmd == "detokenize") return DetokenizeCmd(c, rest);
  if (cmd == "health" && rest.empty()) {
    auto h = c.Health();
    if (!h.ok()) return Report(h.status());
    std::cout << (*h ? "SERVING" : "NOT_SERVING") << "\n";
    return *h ? 0 : 1;
  }
  if (cmd == "info" && rest.empty()) {
    auto m = c.GetModelInfo();
    if (!m.ok()) return Report(m.status());
    Print(*m);
    return 0;
  }
  if (cmd == "status" && rest.empty()) {
    auto s = c.GetServerStatus();
    if (!s.ok()) return Report(s.status());
    Print(*s);
    return 0;
  }
  if (cmd == "abort" && rest.size() == 1) return Report(c.Abort(rest[0]));
  std::cerr << "mcserve-cli: unknown command or wrong arguments: " << cmd << "\n"
            << absl::ProgramUsageMessage() << "\n";
  return kUsage;
}

}  // namespace
}  // namespace mcserve::client

int main(int argc, char** argv) { return mcserve::client::Run(argc, argv); }
