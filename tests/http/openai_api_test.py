"""The OpenAI-compatible HTTP API (--http_listen) with real clients: curl
(-N reads the server-sent events as they come) and the official `openai` npm
package (installed here with npm, into --npm_dir), against a real mcserve on
the built-in model. Greedy outputs are compared with the gRPC API's
(mcserve-cli) for the same prompt. Then over HTTPS (the gRPC listener's
certificate, made here with openssl) with bearer-token auth.

  /usr/bin/python3 tests/http/openai_api_test.py --server BIN --cli BIN --model DIR --npm_dir DIR
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))
from checks import Checks, cli_text, start_mcserve, wait_for  # noqa: E402
from tls_files import make_tls_files  # noqa: E402

TOKEN = "http-test-token-7f3a"
PROMPT = "@ k=7 ? k="
OPENAI_VERSION = "4.99.0"


def start(args, tmp, extra, model=None):
    """mcserve with the HTTP API; returns (process, HTTP port, gRPC port, metrics port)."""
    port_file = os.path.join(tmp, "http.port")
    metrics_file = os.path.join(tmp, "metrics.port")
    for f in (port_file, metrics_file):
        if os.path.exists(f):
            os.remove(f)
    proc, grpc_port = start_mcserve(
        args.server,
        [f"--model={model or args.model}", "--metrics_listen=127.0.0.1:0", f"--metrics_port_file={metrics_file}",
         "--http_listen=127.0.0.1:0", f"--http_port_file={port_file}", "--http_model_name=default"] + extra,
        os.path.join(tmp, "server.log"))
    port = wait_for("the HTTP port file", lambda: open(port_file).read().strip(), timeout=60)
    metrics = wait_for("the metrics port file", lambda: open(metrics_file).read().strip(), timeout=60)
    return proc, int(port), grpc_port, int(metrics)


def sample(metrics_port, series):
    """A sample's value from /metrics (0 when absent)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics").read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def curl(args_list):
    r = subprocess.run(["curl", "-s", "-S", "--max-time", "60"] + args_list, capture_output=True, text=True)
    return r.stdout


def post(port, path, body, token=None, stream=False):
    """curl: (HTTP status, body text)."""
    cmd = ["-w", "\n%{http_code}", "-H", "Content-Type: application/json", "-d", json.dumps(body)]
    if stream:
        cmd.insert(0, "-N")
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    out = curl(cmd + [f"http://127.0.0.1:{port}{path}"])
    body_text, _, code = out.rpartition("\n")
    return int(code), body_text


def sse_events(text):
    """The data of each server-sent event, in order."""
    return [block[len("data: "):] for block in text.split("\n\n") if block.startswith("data: ")]


def cli_greedy(args, grpc_port, max_tokens):
    """mcserve-cli's greedy text."""
    cmd = [args.cli, f"--addr=127.0.0.1:{grpc_port}", "generate", "--temperature=0",
           f"--max_tokens={max_tokens}", PROMPT]
    return cli_text(subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout)


def install_openai(npm_dir, checks):
    if os.path.exists(os.path.join(npm_dir, "node_modules", "openai", "package.json")):
        return True
    os.makedirs(npm_dir, exist_ok=True)
    r = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", npm_dir,
                        f"openai@{OPENAI_VERSION}"], capture_output=True, text=True, timeout=300)
    return checks.check(r.returncode == 0, f"npm install openai@{OPENAI_VERSION}: {r.stderr[-300:]}")


def node_client(args, port, key, base="http://127.0.0.1", extra_env=None, mode=None):
    env = dict(os.environ, **(extra_env or {}))
    script = os.path.join(args.npm_dir, "openai_node_client.mjs")
    with open(os.path.join(HERE, "openai_node_client.mjs")) as src, open(script, "w") as dst:
        dst.write(src.read())  # ESM resolves packages from the script's directory
    return subprocess.run(["node", script, f"{base}:{port}/v1", key, "default"] + ([mode] if mode else []),
                          capture_output=True, text=True, timeout=120, env=env)


def plaintext_checks(args, checks, tmp):
    proc, port, grpc_port, metrics_port = start(args, tmp, [])
    try:
        want = cli_greedy(args, grpc_port, 8)
        checks.check(want != "", f"gRPC greedy text for the prompt: {want!r}")

        code, text = post(port, "/v1/completions", {"model": "default", "prompt": PROMPT, "max_tokens": 8,
                                                    "temperature": 0})
        body = json.loads(text)
        choice = body["choices"][0]
        checks.check(code == 200 and body["object"] == "text_completion" and body["id"].startswith("cmpl-"),
                     f"curl: a completion object ({code}, id {body.get('id')})")
        checks.check(choice["text"] == want, f"curl: the same greedy text as gRPC ({choice['text']!r})")
        checks.check(body["usage"]["completion_tokens"] == 8 and body["usage"]["total_tokens"] ==
                     body["usage"]["prompt_tokens"] + 8, f"curl: usage {body['usage']}")
        checks.check(choice["finish_reason"] == "length", f"curl: finish_reason {choice['finish_reason']}")

        code, text = post(port, "/v1/completions", {"prompt": PROMPT, "max_tokens": 8, "temperature": 0,
                                                    "stream": True, "stream_options": {"include_usage": True}},
                          stream=True)
        events = sse_events(text)
        checks.check(code == 200 and events and events[-1] == "[DONE]", f"curl -N: events end with [DONE] ({len(events)})")
        chunks = [json.loads(e) for e in events[:-1]]
        streamed = "".join(c["text"] for ch in chunks for c in ch["choices"])
        checks.check(streamed == want, f"curl -N: the streamed text joins to the gRPC text ({streamed!r})")
        checks.check(chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 8,
                     f"curl -N: a last usage chunk {chunks[-1].get('usage')}")
        checks.check(len(chunks) >= 3, f"curl -N: the text came in several events ({len(chunks) - 1})")

        code, text = post(port, "/v1/completions", {"prompt": PROMPT, "max_tokens": 4, "echo": True,
                                                    "temperature": 0})
        checks.check(code == 200 and json.loads(text)["choices"][0]["text"] == PROMPT + cli_greedy(args, grpc_port, 4),
                     "echo: the prompt, then the completion")

        # echo with logprobs scores the prompt: its tokens lead the lists,
        # and their sum is what gRPC's prompt_logprobs gives (mcserve-cli).
        code, text = post(port, "/v1/completions", {"prompt": PROMPT, "max_tokens": 3, "echo": True,
                                                    "logprobs": 1, "temperature": 0})
        body = json.loads(text)
        lp = body["choices"][0]["logprobs"] if code == 200 else {}
        n_prompt = body.get("usage", {}).get("prompt_tokens", 0) - 1  # BOS is not listed
        checks.check(code == 200 and len(lp["tokens"]) == n_prompt + 3 and n_prompt == len(PROMPT)
                     and "".join(lp["tokens"]) == body["choices"][0]["text"]
                     and all(v <= 0 for v in lp["token_logprobs"])
                     and all(len(t) == 1 for t in lp["top_logprobs"])
                     and lp["text_offset"][:2] == [0, 1],
                     f"echo + logprobs: the prompt's {n_prompt} tokens, then 3 generated: {text[:300]}")
        scored = subprocess.run([args.cli, f"--addr=127.0.0.1:{grpc_port}", "generate", "--max_tokens=0",
                                 "--prompt_logprobs", PROMPT], capture_output=True, text=True, timeout=60)
        sums = [line for line in scored.stderr.splitlines() if line.startswith("[prompt logprob sum ")]
        grpc_sum = float(sums[0].split()[3]) if sums else float("nan")
        http_sum = sum(lp.get("token_logprobs", [])[:n_prompt])
        checks.check(abs(grpc_sum - http_sum) < 1e-3 * max(1.0, abs(http_sum)),
                     f"echo + logprobs: the prompt scores {http_sum:.4f} over HTTP, {grpc_sum:.4f} over gRPC "
                     f"({sums})")

        for body, status, param, part in [
            ({"prompt": PROMPT, "temperature": -1}, 400, "temperature", "temperature must be in [0, 100]"),
            ({"prompt": PROMPT, "presence_penalty": 3}, 400, "presence_penalty", "must be in [-2, 2]"),
            ({"prompt": PROMPT, "logit_bias": {"x": 1}}, 400, "logit_bias", "token ids"),
            ({"max_tokens": 3}, 400, "prompt", "prompt is required"),
            ({"prompt": PROMPT, "max_tokens": "many"}, 400, "max_tokens", "must be an integer"),
            ({"prompt": PROMPT, "model": "gpt-4"}, 404, None, "does not exist"),
            ({"prompt": PROMPT, "session_id": "never-made"}, 404, None, "never-made"),
            ({"prompt": PROMPT, "n": 17}, 400, "n", "n must be at most 16"),
        ]:
            code, text = post(port, "/v1/completions", body)
            try:
                err = json.loads(text)["error"]
            except (ValueError, KeyError):
                err = {}
            checks.check(code == status and err.get("code") == status and err.get("param") == param
                         and part in err.get("message", ""), f"error {status} for {body}: {text.strip()}")
        deep = {"prompt": PROMPT, "extra": json.loads("[" * 40 + "]" * 40)}
        code, text = post(port, "/v1/completions", deep)
        checks.check(code == 400 and "nests deeper than 32" in text, f"a body nested 40 deep: {code} {text.strip()}")
        big = os.path.join(args.npm_dir, "big-body.json")
        os.makedirs(args.npm_dir, exist_ok=True)
        with open(big, "w") as f:
            json.dump({"prompt": "x" * (5 << 20)}, f)
        out = curl(["-w", "\n%{http_code}", "-H", "Content-Type: application/json", "--data-binary", f"@{big}",
                    f"http://127.0.0.1:{port}/v1/completions"])
        checks.check(out.rpartition("\n")[2] == "413" and "--max_message_bytes" in out and '"code":413' in out,
                     f"a 5 MiB body (over --max_message_bytes): {out[-200:].strip()}")
        os.remove(big)
        code, text = post(port, "/v1/completions", "not json")
        checks.check(code == 400 and "JSON object" in text, f"a body that is not JSON: {code} {text.strip()}")
        code, text = post(port, "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
        checks.check(code == 400 and "no chat template" in text, f"chat without a template: {code} {text.strip()}")
        models = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models").read())
        checks.check(models["object"] == "list" and [m["id"] for m in models["data"]] == ["default"],
                     f"GET /v1/models: {models}")

        # n = 4: one prefill (the prompt-token counter moves once), four forks
        # sampled with seeds 7..10, each equal to a one-shot run with its seed.
        one_shot = {"prompt": PROMPT, "max_tokens": 8, "temperature": 1.0}
        singles = [json.loads(post(port, "/v1/completions", dict(one_shot, seed=7 + i))[1]) for i in range(4)]
        before = sample(metrics_port, "mcserve_prompt_tokens_total")
        code, text = post(port, "/v1/completions", dict(one_shot, seed=7, n=4))
        after = sample(metrics_port, "mcserve_prompt_tokens_total")
        body = json.loads(text)
        texts = [c["text"] for c in sorted(body.get("choices", []), key=lambda c: c["index"])]
        checks.check(code == 200 and texts == [s["choices"][0]["text"] for s in singles],
                     f"n=4: the completions of four one-shot runs with seeds 7-10 ({texts})")
        checks.check(len(set(texts)) > 1, "n=4: the seeds differ, so do the completions")
        prompt = singles[0]["usage"]["prompt_tokens"]
        checks.check(after - before == prompt and body["usage"]["prompt_tokens"] == prompt and
                     body["usage"]["completion_tokens"] == 32,
                     f"n=4: one prefill of {prompt} prompt tokens (counter +{after - before}), usage {body.get('usage')}")
        code, text = post(port, "/v1/completions", dict(one_shot, seed=7, n=2, stream=True), stream=True)
        by_index = {}
        for e in sse_events(text)[:-1]:
            for c in json.loads(e)["choices"]:
                by_index[c["index"]] = by_index.get(c["index"], "") + c["text"]
        checks.check(code == 200 and [by_index.get(0), by_index.get(1)] == texts[:2],
                     f"n=2 streamed: chunks name their completion, each joins to its text ({by_index})")
        code, text = post(port, "/v1/completions", dict(one_shot, n=2, session_id="web-n"))
        checks.check(code == 400 and "one-shot" in text, f"n > 1 in a session is refused: {code} {text.strip()}")
        def no_sessions():
            listed = subprocess.run([args.cli, f"--addr=127.0.0.1:{grpc_port}", "session", "list"],
                                    capture_output=True, text=True)
            return listed.returncode == 0 and listed.stdout.strip() == ""
        try:
            wait_for("no sessions", no_sessions, timeout=10)
            checks.check(True, "n's scratch sessions are gone")
        except AssertionError:
            checks.check(False, "n's scratch sessions are gone")

        # A session over HTTP: two turns continue one MC state.
        subprocess.run([args.cli, f"--addr=127.0.0.1:{grpc_port}", "session", "create", "web"], check=True,
                       capture_output=True)
        for turn, n in (("@ k=7 ", 0), ("? k=", 1)):  # the first turn only prefills
            code, text = post(port, "/v1/completions", {"prompt": turn, "max_tokens": n, "temperature": 0,
                                                        "session_id": "web"})
        got = json.loads(text)["choices"][0]["text"] if code == 200 else text
        checks.check(code == 200 and got == want[:1], f"session over two HTTP turns recalls the fact: {got!r}")

        if install_openai(args.npm_dir, checks):
            r = node_client(args, port, "unused")
            checks.check(r.returncode == 0, f"openai npm client ran: {r.stderr[-500:]}")
            if r.returncode == 0:
                seen = json.loads(r.stdout)
                checks.check(seen["models"] == ["default"], f"openai: models.list {seen['models']}")
                checks.check(seen["plain"]["text"] == want, f"openai: completions.create text {seen['plain']['text']!r}")
                lp = seen["plain"]
                checks.check(len(lp["tokens"]) == 8 and len(lp["token_logprobs"]) == 8 and
                             all(len(t) == 2 for t in lp["top_logprobs"]) and
                             all(v <= 0 for v in lp["token_logprobs"]),
                             f"openai: logprobs (8 tokens, 2 alternatives each): {lp['token_logprobs']}")
                checks.check("".join(lp["tokens"]) == want, "openai: logprobs tokens join to the text")
                checks.check(seen["stream"]["text"] == want and seen["stream"]["finish_reason"] == "length"
                             and seen["stream"]["usage"]["completion_tokens"] == 8,
                             f"openai: a streamed completion {seen['stream']}")
                checks.check(seen["bad"]["thrown"] and seen["bad"]["cls"] == "BadRequestError" and
                             seen["bad"]["status"] == 400 and seen["bad"]["param"] == "temperature",
                             f"openai: BadRequestError for temperature -1 {seen['bad']}")
                checks.check(seen["unknown_model"]["cls"] == "NotFoundError",
                             f"openai: NotFoundError for an unknown model {seen['unknown_model']}")
    finally:
        checks.check(stop(proc) == 0, "SIGTERM: exit 0")

CHAT_TEMPLATE = """{{ bos_token }}{% for message in messages %}
{% if message['role'] not in ['system', 'user', 'assistant'] %}
{{ raise_exception('unknown role ' + message['role']) }}
{% endif %}
<|{{ message['role'] }}|>{{ message['content'] | trim }}
{% endfor %}
{% if add_generation_prompt %}<|assistant|>{% endif %}
"""


def golden_chat_prompt(messages):
    """The prompt Jinja2 renders (as transformers sets it up), less the leading BOS text."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    text = env.from_string(CHAT_TEMPLATE).render(messages=messages, bos_token="<s>", eos_token="</s>",
                                                 add_generation_prompt=True)
    return text[len("<s>"):] if text.startswith("<s>") else text


def chat_checks(args, checks, tmp):
    """/v1/chat/completions on a model directory that carries a chat template."""
    model = os.path.join(tmp, "chat_model")
    os.makedirs(model, exist_ok=True)
    for name in os.listdir(args.model):
        dst = os.path.join(model, name)
        if not os.path.exists(dst):
            os.symlink(os.path.join(os.path.abspath(args.model), name), dst)
    with open(os.path.join(model, "chat_template.jinja"), "w") as f:
        f.write(CHAT_TEMPLATE)
    with open(os.path.join(model, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>"}, f)
    proc, port, grpc_port, _ = start(args, tmp, ["--default_max_tokens=5"], model=model)
    try:
        messages = [{"role": "system", "content": "Recall facts."}, {"role": "user", "content": " @ k=7 ? k= "}]
        prompt = golden_chat_prompt(messages)
        code, text = post(port, "/v1/completions", {"prompt": prompt, "max_tokens": 6, "temperature": 0})
        want = json.loads(text)["choices"][0]["text"] if code == 200 else None
        want_usage = json.loads(text).get("usage") if code == 200 else None

        code, text = post(port, "/v1/chat/completions", {"model": "default", "messages": messages,
                                                         "max_tokens": 6, "temperature": 0})
        body = json.loads(text)
        choice = body.get("choices", [{}])[0]
        checks.check(code == 200 and body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
                     and choice["message"] == {"role": "assistant", "content": want},
                     f"chat: the completion of the prompt Jinja2 renders ({want!r}): {text[:300]}")
        checks.check(body.get("usage") == want_usage, f"chat: usage {body.get('usage')} = {want_usage}")

        code, text = post(port, "/v1/chat/completions", {"messages": messages, "max_tokens": 6,
                                                         "temperature": 0, "stream": True}, stream=True)
        events = sse_events(text)
        chunks = [json.loads(e) for e in events[:-1]]
        deltas = [c["choices"][0]["delta"] for c in chunks]
        checks.check(code == 200 and events[-1] == "[DONE]" and
                     all(c["object"] == "chat.completion.chunk" for c in chunks) and
                     deltas[0].get("role") == "assistant" and
                     "".join(d.get("content", "") for d in deltas) == want and
                     chunks[-1]["choices"][0]["finish_reason"] == "length",
                     f"chat streamed: chunks with the role first, joining to the same text ({len(chunks)} chunks)")

        code, text = post(port, "/v1/chat/completions", {"messages": messages, "max_tokens": 4, "temperature": 0,
                                                         "logprobs": True, "top_logprobs": 2})
        content = json.loads(text)["choices"][0]["logprobs"]["content"] if code == 200 else []
        checks.check(code == 200 and len(content) == 4 and all(len(t["top_logprobs"]) == 2 and t["logprob"] <= 0
                                                               and t["bytes"] == list(t["token"].encode())
                                                               for t in content),
                     f"chat logprobs: 4 tokens, 2 alternatives each, with bytes: {content[:2]}")

        code, text = post(port, "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}],
                                                         "temperature": 0, "ignore_eos": True})
        checks.check(code == 200 and json.loads(text)["usage"]["completion_tokens"] == 5,
                     f"chat without max_tokens: the server's --default_max_tokens (5): {text[:200]}")
        code, text = post(port, "/v1/chat/completions", {"messages": messages, "max_completion_tokens": 2,
                                                         "temperature": 0, "ignore_eos": True})
        checks.check(code == 200 and json.loads(text)["usage"]["completion_tokens"] == 2,
                     f"chat: max_completion_tokens {text[:200]}")
        code, text = post(port, "/v1/chat/completions", {"messages": messages, "max_tokens": 3, "n": 2,
                                                         "temperature": 1.0, "seed": 3})
        got = json.loads(text).get("choices", []) if code == 200 else []
        checks.check(code == 200 and sorted(c["index"] for c in got) == [0, 1], f"chat n=2: two choices {text[:200]}")

        for body, param, part in [
            ({"messages": [{"role": "tool", "content": "x"}]}, "messages", "unknown role tool"),
            ({"messages": []}, "messages", "non-empty"),
            ({"messages": [{"content": "x"}]}, "messages", "role must be a string"),
            ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "messages", "text"),
            ({"messages": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]}, "messages", "text"),
            ({"messages": [{"role": "user", "content": 7}]}, "messages", "must be a string"),
            ({"messages": [{"role": "user", "content": "x"}] * 1025}, "messages", "the limit is 1024"),
            ({"messages": messages, "top_logprobs": 2}, "logprobs", "needs logprobs: true"),
            ({"messages": messages, "temperature": -1}, "temperature", "must be in [0, 100]"),
        ]:
            code, text = post(port, "/v1/chat/completions", body)
            err = json.loads(text).get("error", {}) if text.startswith("{") else {}
            checks.check(code == 400 and err.get("param") == param and part in err.get("message", ""),
                         f"chat error 400 ({param}) for {str(body)[:120]}: {text.strip()[:200]}")

        if install_openai(args.npm_dir, checks):
            r = node_client(args, port, "unused", mode="chat")
            checks.check(r.returncode == 0, f"openai npm client, chat: ran {r.stderr[-500:]}")
            if r.returncode == 0:
                seen = json.loads(r.stdout)
                plain = seen["plain"]
                checks.check(plain["object"] == "chat.completion" and plain["message"]["role"] == "assistant"
                             and plain["message"]["content"] == want and len(plain["logprobs"]) == 6
                             and all(n == 2 for _, _, n in plain["logprobs"]),
                             f"openai: chat.completions.create {plain}")
                checks.check(seen["stream"] == {"role": "assistant", "content": want, "finish_reason": "length"},
                             f"openai: a streamed chat completion {seen['stream']}")
    finally:
        checks.check(stop(proc) == 0, "chat: SIGTERM: exit 0")


def auth_checks(args, checks, tmp):
    """HTTPS (the gRPC listener's certificate) and bearer tokens."""
    tls = os.path.join(tmp, "tls")
    make_tls_files(tls, TOKEN, "web", "user")
    proc, port, _, _ = start(args, tmp, [f"--auth_principals={tls}/principals", f"--tls_cert={tls}/tls.crt",
                                      f"--tls_key={tls}/tls.key"])
    base = f"https://localhost:{port}"
    ca = ["--cacert", f"{tls}/ca.crt"]
    try:
        def call(token):
            cmd = ca + ["-w", "\n%{http_code}", "-H", "Content-Type: application/json",
                        "-d", json.dumps({"prompt": PROMPT, "max_tokens": 2})]
            if token:
                cmd += ["-H", f"Authorization: Bearer {token}"]
            body, _, code = curl(cmd + [f"{base}/v1/completions"]).rpartition("\n")
            return int(code or 0), body
        code, text = call(None)
        checks.check(code == 401 and json.loads(text)["error"]["type"] == "authentication_error",
                     f"https + auth: no token is 401 ({code} {text.strip()})")
        code, text = call("wrong")
        checks.check(code == 401, f"https + auth: a wrong token is 401 ({code})")
        code, text = call(TOKEN)
        checks.check(code == 200, f"https + auth: the token is served ({code} {text[:80]})")
        plain = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10",
                                f"http://127.0.0.1:{port}/v1/models"], capture_output=True, text=True)
        checks.check(plain.stdout in ("000", "400"), f"https: plain HTTP is not served ({plain.stdout})")
        untrusted = subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "10", f"{base}/health"])
        checks.check(untrusted.returncode != 0, "https: a client not trusting the CA is refused")
        if os.path.exists(os.path.join(args.npm_dir, "node_modules", "openai")):
            env_ca = {"NODE_EXTRA_CA_CERTS": f"{tls}/ca.crt"}
            r = node_client(args, port, TOKEN, "https://localhost", env_ca)
            checks.check(r.returncode == 0, f"https + auth: the openai client with the token as apiKey {r.stderr[-300:]}")
            r = node_client(args, port, "wrong", "https://localhost", env_ca)
            checks.check(r.returncode != 0 and "AuthenticationError" in r.stderr,
                         f"https + auth: the openai client with a wrong key gets AuthenticationError {r.stderr[-200:]}")
    finally:
        checks.check(stop(proc) == 0, "https + auth: SIGTERM: exit 0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--npm_dir", required=True)
    args = ap.parse_args()
    checks = Checks()
    tmp = tempfile.mkdtemp(prefix="mcserve_http_")
    print("== plaintext, no auth ==")
    plaintext_checks(args, checks, tmp)
    print("\n== chat, with the model directory's template ==")
    chat_checks(args, checks, tmp)
    print("\n== HTTPS, bearer tokens ==")
    auth_checks(args, checks, tmp)
    return checks.finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
