"""The gRPC API from Python's grpcio (Debian's), with stubs generated here at
test time by protoc and grpc_python_plugin from proto/mcserve/v1: a real
mcserve on the built-in model, driven the way a Python user would.

  /usr/bin/python3 tests/python/grpc_client_test.py --server BIN --cli BIN --model DIR
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))
from checks import Checks, cli_text, start_mcserve  # noqa: E402
from grpc_stubs import generate_stubs  # noqa: E402

PROMPT = "@ k=7 ? k="


def vm_hwm_kib(pid):
    """The process's peak resident set (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    checks = Checks()
    tmp = tempfile.mkdtemp(prefix="mcserve_pygrpc_")
    generate_stubs(tmp)
    import grpc
    from mcserve.v1 import generation_pb2 as pb
    from mcserve.v1 import generation_pb2_grpc as rpc

    proc, port = start_mcserve(args.server, [f"--model={args.model}", "--metrics_listen="],
                               os.path.join(tmp, "server.log"))
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=60)
        stub = rpc.GenerationStub(channel)

        info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
        checks.check(info.vocab_size > 0 and info.segment_length > 0,
                     f"GetModelInfo: vocab {info.vocab_size}, segments of {info.segment_length}")

        cli = subprocess.run([args.cli, f"--addr=127.0.0.1:{port}", "generate", "--temperature=0",
                              "--max_tokens=8", PROMPT], capture_output=True, text=True, timeout=60).stdout
        want = cli_text(cli)
        req = pb.GenerateRequest(text=PROMPT, sampling_params=pb.SamplingParams(temperature=0, max_tokens=8),
                                 return_logprobs=True, top_logprobs=3)
        responses = list(stub.Generate(req, timeout=60))
        text = "".join(r.text for r in responses)
        last = responses[-1]
        checks.check(text == want, f"Generate streams mcserve-cli's greedy text ({text!r})")
        checks.check(last.finish_reason == pb.FINISH_REASON_LENGTH and last.usage.completion_tokens == 8,
                     f"the last message: finish {pb.FinishReason.Name(last.finish_reason)}, usage {last.usage.completion_tokens}")
        lps = [lp for r in responses for lp in r.logprobs]
        checks.check(len(lps) == 8 and all(len(lp.top) == 3 for lp in lps), "logprobs with 3 alternatives each")

        biased = pb.GenerateRequest(text=PROMPT, sampling_params=pb.SamplingParams(
            temperature=0, max_tokens=5, ignore_eos=True, logit_bias={ord("q"): 100.0}))
        got = "".join(r.text for r in stub.Generate(biased, timeout=60))
        checks.check(got == "qqqqq", f"logit_bias from Python: {got!r}")

        try:
            list(stub.Generate(pb.GenerateRequest(text=PROMPT, sampling_params=pb.SamplingParams(
                frequency_penalty=5)), timeout=30))
            checks.check(False, "frequency_penalty 5 is refused")
        except grpc.RpcError as e:
            checks.check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and
                         e.details() == "sampling_params.frequency_penalty must be in [-2, 2], got 5",
                         f"frequency_penalty 5: {e.code()} {e.details()}")

        for sid in ("py-b", "py-a", "py-c"):
            stub.CreateSession(pb.CreateSessionRequest(session_id=sid), timeout=30)
        first = stub.Generate(pb.GenerateRequest(text="@ k=7 ", session_id="py-a",
                                                 sampling_params=pb.SamplingParams(max_tokens=0)), timeout=60)
        list(first)
        turn = list(stub.Generate(pb.GenerateRequest(text="? k=", session_id="py-a",
                                                     sampling_params=pb.SamplingParams(temperature=0, max_tokens=1)),
                                  timeout=60))
        checks.check("".join(r.text for r in turn) == want[:1], "a session keeps its memory across two turns")
        page = stub.ListSessions(pb.ListSessionsRequest(page_size=2), timeout=30)
        rest = stub.ListSessions(pb.ListSessionsRequest(page_size=2, page_token=page.next_page_token), timeout=30)
        ids = [s.session_id for s in page.sessions] + [s.session_id for s in rest.sessions]
        checks.check(ids == ["py-a", "py-b", "py-c"] and rest.next_page_token == "",
                     f"ListSessions pages in id order: {ids}")
        a = page.sessions[0]
        checks.check(a.num_tokens == 1 + len("@ k=7 ? k=") + 1 and a.last_used_unix_ms > 0,
                     f"py-a: {a.num_tokens} tokens, last used {a.last_used_unix_ms}")
        # 64 MiB of garbage is refused at its first chunk, not after the last,
        # and the server does not buffer it (issue 18, 8b).
        sent = [0]

        def garbage():
            for _ in range(64):
                sent[0] += 1
                yield pb.ImportSessionRequest(data=b"\x5a" * (1 << 20))
        rss_before = vm_hwm_kib(proc.pid)
        try:
            stub.ImportSession(garbage(), timeout=60)
            checks.check(False, "a garbage snapshot is refused")
        except grpc.RpcError as e:
            checks.check(e.code() == grpc.StatusCode.INVALID_ARGUMENT and "snapshot" in e.details(),
                         f"garbage snapshot: {e.code()} {e.details()}")
        grown = vm_hwm_kib(proc.pid) - rss_before
        checks.check(sent[0] < 16, f"refused after {sent[0]} of 64 chunks of 1 MiB were taken")
        checks.check(grown < 16 * 1024, f"peak RSS grew {grown} KiB over the 64 MiB stream")
        try:
            stub.GetSession(pb.GetSessionRequest(session_id="nobody"), timeout=30)
            checks.check(False, "an unknown session is NOT_FOUND")
        except grpc.RpcError as e:
            checks.check(e.code() == grpc.StatusCode.NOT_FOUND, f"unknown session: {e.code()}")
    finally:
        proc.send_signal(signal.SIGTERM)
        checks.check(proc.wait(timeout=60) == 0, "SIGTERM: exit 0")
    return checks.finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
