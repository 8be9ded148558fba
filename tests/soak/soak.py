"""Soak: thousands of gRPC operations against a real mcserve from several
threads, across every way a request can end, while the server's resident
memory (VmRSS) is sampled. Passes when, after a warm-up, RSS grows by less
than --rss_bound_mb, and when everything the traffic made is gone at the end:
no request running or waiting, no session, no checkpoint slot in either tier.

Operations (seeded per worker): a completion to its length or EOS, one ended
by a stop string, one the client cancels after a few messages, one cut by a
short deadline, one ended by Abort from the client, n = 2-4 completions of one
prompt (sometimes cancelled), a session's life (create, two turns, fork, a
turn on the fork, export, import under a new id, a turn there, delete all
three), and bad requests (INVALID_ARGUMENT, NOT_FOUND).

  /usr/bin/python3 tests/soak/soak.py --server BIN --model DIR [--ops 3000] [--workers 6]
      [--leak_bytes N] [--rss_bound_mb 16] [--json FILE]

--leak_bytes starts the server with --testonly_leak_bytes_per_request (the
must-fail control: tests/soak/soak_test.py). Exit 0 when every check passed.
"""
import argparse
import collections
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "support"))
from checks import Checks, start_mcserve  # noqa: E402
from grpc_stubs import generate_stubs  # noqa: E402

OPS = [("complete", 5), ("stop", 2), ("cancel", 3), ("deadline", 2), ("abort", 2), ("fanout", 2),
       ("session", 2), ("bad", 1)]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Soak:
    def __init__(self, pb, rpc, stub, grpc):
        self.pb, self.rpc, self.stub, self.grpc = pb, rpc, stub, grpc
        self.lock = threading.Lock()
        self.outcomes = collections.Counter()
        self.done = 0

    def note(self, what):
        with self.lock:
            self.outcomes[what] += 1

    def params(self, rng, max_tokens, **kw):
        return self.pb.SamplingParams(max_tokens=max_tokens, temperature=1.0, seed=rng.randrange(1 << 30), **kw)

    def drain(self, stream):
        last = None
        for r in stream:
            last = r
        return last

    def code(self, e):
        return e.code().name if hasattr(e, "code") else type(e).__name__

    def run(self, op, rng, tag):
        pb, stub = self.pb, self.stub
        prompt = "".join(rng.choice("abcdefgh @=?k7") for _ in range(rng.randrange(4, 80)))
        try:
            if op == "complete":
                last = self.drain(stub.Generate(pb.GenerateRequest(text=prompt, sampling_params=self.params(
                    rng, rng.randrange(1, 24))), timeout=60))
                self.note(f"complete:{pb.FinishReason.Name(last.finish_reason)}")
            elif op == "stop":
                last = self.drain(stub.Generate(pb.GenerateRequest(text=prompt, sampling_params=self.params(
                    rng, 64, stop=[" ", "e", "a"], ignore_eos=True)), timeout=60))
                self.note(f"stop:{pb.FinishReason.Name(last.finish_reason)}")
            elif op == "cancel":
                stream = stub.Generate(pb.GenerateRequest(text=prompt, sampling_params=self.params(
                    rng, 400, ignore_eos=True)), timeout=60)
                for i, _ in enumerate(stream):
                    if i + 1 >= rng.randrange(1, 5):
                        break
                stream.cancel()
                self.note("cancel:client")
            elif op == "deadline":
                self.drain(stub.Generate(pb.GenerateRequest(text=prompt, sampling_params=self.params(
                    rng, 400, ignore_eos=True)), timeout=rng.uniform(0.005, 0.05)))
                self.note("deadline:finished first")
            elif op == "abort":
                rid = f"soak-abort-{tag}"
                stream = stub.Generate(pb.GenerateRequest(request_id=rid, text=prompt, sampling_params=self.params(
                    rng, 400, ignore_eos=True)), timeout=60)
                next(stream)
                stub.Abort(pb.AbortRequest(request_id=rid), timeout=30)
                last = self.drain(stream)
                self.note(f"abort:{pb.FinishReason.Name(last.finish_reason) if last else 'no message'}")
            elif op == "fanout":
                n = rng.randrange(2, 5)
                stream = stub.Generate(pb.GenerateRequest(text=prompt, n=n, sampling_params=self.params(
                    rng, 8, ignore_eos=True)), timeout=60)
                if rng.random() < 0.3:
                    next(stream)
                    stream.cancel()
                    self.note("fanout:cancelled")
                else:
                    ends = sum(1 for r in stream if r.finish_reason != pb.FINISH_REASON_UNSPECIFIED)
                    self.note(f"fanout:{'all ended' if ends == n else f'{ends} of {n} ended'}")
            elif op == "session":
                sid = f"soak-{tag}"
                stub.CreateSession(pb.CreateSessionRequest(session_id=sid), timeout=30)
                for turn in (prompt, "k"):
                    self.drain(stub.Generate(pb.GenerateRequest(text=turn, session_id=sid, sampling_params=self.params(
                        rng, rng.randrange(1, 12))), timeout=60))
                fork = stub.ForkSession(pb.ForkSessionRequest(session_id=sid, new_session_id=sid + "-f"), timeout=30)
                self.drain(stub.Generate(pb.GenerateRequest(text="?", session_id=fork.session_id,
                                                            sampling_params=self.params(rng, 4)), timeout=60))
                blob = b"".join(c.data for c in stub.ExportSession(pb.ExportSessionRequest(session_id=sid), timeout=60))
                imported = stub.ImportSession(iter([pb.ImportSessionRequest(session_id=sid + "-i", data=blob)]),
                                              timeout=60)
                self.drain(stub.Generate(pb.GenerateRequest(text="=", session_id=imported.session_id,
                                                            sampling_params=self.params(rng, 4)), timeout=60))
                for s in (sid, fork.session_id, imported.session_id):
                    stub.DeleteSession(pb.DeleteSessionRequest(session_id=s), timeout=30)
                self.note("session:lived and deleted")
            elif op == "bad":
                try:
                    self.drain(stub.Generate(pb.GenerateRequest(text=prompt, sampling_params=pb.SamplingParams(
                        temperature=-1)), timeout=30))
                    self.note("bad:accepted!")
                except self.grpc.RpcError as e:
                    self.note(f"bad:{self.code(e)}")
                try:
                    stub.GetSession(pb.GetSessionRequest(session_id=f"never-{tag}"), timeout=30)
                    self.note("bad:found!")
                except self.grpc.RpcError as e:
                    self.note(f"bad:{self.code(e)}")
        except self.grpc.RpcError as e:
            self.note(f"{op}:{self.code(e)}")
        with self.lock:
            self.done += 1

    def worker(self, index, ops, seed):
        rng = random.Random(seed * 1000 + index)
        names = [n for n, w in OPS for _ in range(w)]
        for i in range(ops):
            self.run(rng.choice(names), rng, f"{index}-{i}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--warmup", type=float, default=0.25, help="share of the ops before the RSS baseline")
    ap.add_argument("--rss_bound_mb", type=float, default=16.0)
    ap.add_argument("--leak_bytes", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    checks = Checks()
    tmp = tempfile.mkdtemp(prefix="mcserve_soak_")
    generate_stubs(tmp)
    import grpc
    from mcserve.v1 import generation_pb2 as pb
    from mcserve.v1 import generation_pb2_grpc as rpc

    flags = [f"--model={args.model}", "--metrics_listen=", "--prefix_cache=false",
             "--log_level=warning", "--max_sessions=1024"]
    if args.leak_bytes:
        flags.append(f"--testonly_leak_bytes_per_request={args.leak_bytes}")
    proc, port = start_mcserve(args.server, flags, os.path.join(tmp, "server.log"))
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=60)
    stub = rpc.GenerationStub(channel)
    soak = Soak(pb, rpc, stub, grpc)

    samples = []  # (ops done, RSS kB)
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append((soak.done, rss_kb(proc.pid)))
            time.sleep(0.25)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.time()
    per = args.ops // args.workers
    workers = [threading.Thread(target=soak.worker, args=(i, per, args.seed)) for i in range(args.workers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.time() - start

    def status():
        return stub.GetServerStatus(pb.GetServerStatusRequest(), timeout=30)
    deadline = time.time() + 30
    while time.time() < deadline:
        st = status()
        if not (st.running_requests or st.waiting_requests or st.sessions):
            break
        time.sleep(0.1)
    time.sleep(1.0)
    stop.set()
    sampler.join()
    final_rss = rss_kb(proc.pid)
    st = status()
    total = per * args.workers
    warm = [kb for done, kb in samples if done >= args.warmup * total]
    baseline = warm[0] if warm else final_rss
    growth_mb = (final_rss - baseline) / 1024.0
    peak_mb = max(kb for _, kb in samples) / 1024.0

    print(f"{total} operations by {args.workers} threads in {elapsed:.1f} s "
          f"({total / elapsed:.0f}/s); leak control: {args.leak_bytes} bytes per Generate")
    for what, n in sorted(soak.outcomes.items()):
        print(f"    {n:6d}  {what}")
    print(f"RSS: {baseline / 1024.0:.1f} MB after warm-up, {final_rss / 1024.0:.1f} MB at the end "
          f"(peak {peak_mb:.1f} MB)")
    checks.check(soak.done == total, f"every operation ended ({soak.done} of {total})")
    checks.check(st.running_requests == 0 and st.waiting_requests == 0,
                 f"no request left running ({st.running_requests}) or waiting ({st.waiting_requests})")
    checks.check(st.sessions == 0, f"no session left ({st.sessions}: scratch sessions of n, imports, forks)")
    checks.check(st.checkpoint_slots_used == 0 and st.host_checkpoint_slots_used == 0,
                 f"every checkpoint slot is free again (device {st.checkpoint_slots_used}, host "
                 f"{st.host_checkpoint_slots_used})")
    seen = set(soak.outcomes)
    for path in ("complete:FINISH_REASON_LENGTH", "stop:FINISH_REASON_STOP", "cancel:client",
                 "deadline:DEADLINE_EXCEEDED", "abort:FINISH_REASON_CANCELLED", "fanout:all ended",
                 "fanout:cancelled", "session:lived and deleted", "bad:INVALID_ARGUMENT", "bad:NOT_FOUND"):
        checks.check(path in seen, f"finish path exercised: {path}")
    unexpected = {k: v for k, v in soak.outcomes.items()
                  if k.split(":")[1] in ("INTERNAL", "UNKNOWN", "DATA_LOSS", "UNAVAILABLE", "accepted!", "found!")}
    checks.check(not unexpected, f"no unexpected status: {unexpected}")
    checks.check(growth_mb < args.rss_bound_mb,
                 f"RSS growth after warm-up {growth_mb:.1f} MB < {args.rss_bound_mb} MB")
    proc.send_signal(signal.SIGTERM)
    checks.check(proc.wait(timeout=60) == 0, "SIGTERM: exit 0")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ops": total, "elapsed_s": elapsed, "outcomes": soak.outcomes, "rss_baseline_mb": baseline / 1024,
                       "rss_final_mb": final_rss / 1024, "growth_mb": growth_mb, "failed": checks.failed,
                       "samples": samples}, f)
    return checks.finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
