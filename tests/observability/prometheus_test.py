"""The server's metrics through a real Prometheus.

Starts the real mcserve binary (a small checkpoint pool, so eviction happens)
and Debian's Prometheus scraping it every second with deploy/prometheus's
rules; drives a known sequence of requests with mcserve-cli over gRPC; then
  * checks that counters moved by exactly the expected amounts,
  * runs promtool check metrics on a scrape, check config, check rules and
    test rules,
  * evaluates every PromQL expression of every panel of every dashboard in
    deploy/grafana/dashboards and every recording rule through Prometheus's
    HTTP API, and asserts each returned data, printing panel by panel.

  /usr/bin/python3 tests/observability/prometheus_test.py --server BIN --cli BIN --model DIR
"""
import argparse
import glob
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from checks import Checks, free_port, start_mcserve, wait_for  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
# Checkpoint bytes of the default model: 2 layers x (4 heads x 32 x 32 x 4 + 4 x 32 x 4).
CKPT_BYTES = 33792


def http_get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def parse_metrics(text):
    """{'name{labels}': value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


class Tee:
    """Writes to several streams."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for s in self.streams:
            s.write(text)

    def flush(self):
        for s in self.streams:
            s.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "default"))
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    ap.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    ap.add_argument("--report", help="also write everything printed to this file")
    args = ap.parse_args()
    if args.report:
        sys.stdout = Tee(sys.stdout, open(args.report, "w"))
    f = Checks()
    tmp = tempfile.mkdtemp(prefix="mcserve_prom_")
    procs = []
    try:
        # --- the server ---------------------------------------------------
        mport_file = os.path.join(tmp, "mport")  # written before the gRPC port file
        server, port = start_mcserve(
            args.server,
            [f"--model={args.model}", "--metrics_listen=127.0.0.1:0", f"--metrics_port_file={mport_file}",
             f"--checkpoint_pool={8 * CKPT_BYTES}", f"--host_pool={64 * CKPT_BYTES}", "--threads=1",
             # per-segment prefill pieces: a 200-token prompt's six segments are reusable
             "--prefill_piece=32"],
            os.path.join(tmp, "server.log"))
        procs.append(server)
        addr = f"127.0.0.1:{port}"
        metrics_url = f"http://127.0.0.1:{open(mport_file).read().strip()}/metrics"

        # --- Prometheus -----------------------------------------------------
        prom_port = free_port()
        prom_url = f"http://127.0.0.1:{prom_port}"
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w") as c:
            c.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - {os.path.join(DEPLOY, "prometheus", "rules.yml")}
scrape_configs:
  - job_name: mcserve
    static_configs:
      - targets: ["{metrics_url.split('/')[2]}"]
""")
        prom_log = open(os.path.join(tmp, "prometheus.log"), "w")
        prom = subprocess.Popen(
            [args.prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=prom_log, stderr=subprocess.STDOUT)
        procs.append(prom)

        def query(expr):
            url = f"{prom_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
            r = json.loads(http_get(url))
            if r["status"] != "success":
                raise AssertionError(f"{expr}: {r}")
            return r["data"]["result"]

        wait_for("Prometheus ready", lambda: "Ready" in http_get(prom_url + "/-/ready"))
        wait_for("first scrape", lambda: query('up{job="mcserve"} == 1'))
        print(f"server {addr}, metrics {metrics_url}, Prometheus {prom_url} (scrape every 1 s)")

        # --- a known sequence of requests -----------------------------------
        before = parse_metrics(http_get(metrics_url))

        def cli(*a, expect=0):
            p = subprocess.run([args.cli, f"--addr={addr}", *a], capture_output=True, text=True,
                               timeout=120)
            if p.returncode != expect:
                raise AssertionError(f"mcserve-cli {a}: exit {p.returncode}\n{p.stderr}")
            return p.stdout.strip()

        for _ in range(3):  # one-shot: 6 prompt tokens (BOS + "hello"), 4 generated
            cli("generate", "--max_tokens=4", "--ignore_eos", "--temperature=0", "hello")
        cli("generate", "--temperature=-1", "hi", expect=4)  # INVALID_ARGUMENT
        def long_prompt(k):  # a different one per session: no shared prefix to reuse
            return "".join(chr(ord("a") + (i + k) % 26) for i in range(200))
        sessions = [cli("session", "create") for _ in range(6)]
        for k, s in enumerate(sessions):  # 201 prompt tokens (BOS + 200), 2 generated, ~6 checkpoints
            cli("generate", f"--session={s}", "--max_tokens=2", "--ignore_eos", long_prompt(k))
        cli("session", "delete", sessions[0])
        # The engine's gauges (sessions, evictions, the prefix cache) are published at the
        # end of its loop, a moment after it answered; counters are recorded before the
        # answer. So scrape until the publish that follows the delete (and so every command
        # before it) is in, and likewise for the prefix hits below; the checks stay exact.
        def scrape_when(ready, timeout=10.0):
            deadline = time.time() + timeout
            while True:
                text = http_get(metrics_url)
                if ready(parse_metrics(text)) or time.time() > deadline:
                    return text
                time.sleep(0.1)

        after_text = scrape_when(lambda m: m.get("mcserve_sessions_active") == 5)
        after = parse_metrics(after_text)
        # After the counted sequence: a one-shot request that starts like session 1's
        # prompt reuses its six segments from the prefix cache (for the cache panels).
        cli("generate", "--max_tokens=1", "--ignore_eos", long_prompt(1) + "!")
        hits_key = "mcserve_prefix_cache_hits_total"
        base_hits = after.get(hits_key, 0)
        hits = parse_metrics(scrape_when(lambda m: m.get(hits_key, 0) >= base_hits + 6 * 32)).get(hits_key, 0)

        def delta(key):
            return after.get(key, 0.0) - before.get(key, 0.0)

        print("\ncounters after the known sequence:")
        f.check(delta("mcserve_prompt_tokens_total") == 3 * 6 + 6 * 201,
                f"prompt tokens +{delta('mcserve_prompt_tokens_total'):g} (want {3 * 6 + 6 * 201})")
        f.check(delta("mcserve_generation_tokens_total") == 3 * 4 + 6 * 2,
                f"generation tokens +{delta('mcserve_generation_tokens_total'):g} (want 24)")
        f.check(delta('mcserve_requests_total{finish_reason="length"}') == 9,
                "requests finished by length +9")
        f.check(delta('mcserve_requests_total{finish_reason="error"}') == 0, "failed requests +0")
        f.check(delta('mcserve_grpc_requests_total{code="OK",method="Generate"}') == 9,
                "Generate OK +9")
        f.check(delta('mcserve_grpc_requests_total{code="INVALID_ARGUMENT",method="Generate"}') == 1,
                "Generate INVALID_ARGUMENT +1")
        f.check(delta('mcserve_grpc_requests_total{code="OK",method="CreateSession"}') == 6,
                "CreateSession OK +6")
        f.check(delta('mcserve_grpc_requests_total{code="OK",method="DeleteSession"}') == 1,
                "DeleteSession OK +1")
        f.check(after["mcserve_sessions_active"] == 5, "sessions active = 5")
        f.check(delta("mcserve_time_to_first_token_seconds_count") == 9, "TTFT observations +9")
        f.check(delta("mcserve_inter_token_latency_seconds_count") == 3 * 3 + 6 * 1,
                "inter-token observations +15 (tokens after each first)")
        offloaded = delta('mcserve_checkpoint_evictions_total{reason="offload"}')
        f.check(offloaded > 0, f"checkpoints offloaded +{offloaded:g} (a pool of 8)")
        f.check(after['mcserve_checkpoint_cache_capacity_bytes{tier="device"}'] == 8 * CKPT_BYTES,
                "device capacity = --checkpoint_pool")
        f.check(hits - after.get("mcserve_prefix_cache_hits_total", 0) == 6 * 32,
                f"prefix cache hits +{hits - after.get('mcserve_prefix_cache_hits_total', 0):g} "
                "tokens (six segments of session 1's prompt)")

        scrape = os.path.join(tmp, "scrape.txt")
        open(scrape, "w").write(after_text)
        print("\npromtool:")
        for cmd, cwd in [([args.promtool, "check", "metrics"], None),
                         ([args.promtool, "check", "config", config], None),
                         ([args.promtool, "check", "config", "prometheus.yml"], "prometheus"),
                         ([args.promtool, "check", "rules", "rules.yml"], "prometheus"),
                         ([args.promtool, "test", "rules", "rules_test.yml"], "prometheus")]:
            p = subprocess.run(cmd, cwd=os.path.join(DEPLOY, cwd) if cwd else None,
                               input=after_text if cmd[2] == "metrics" else None,
                               capture_output=True, text=True)
            f.check(p.returncode == 0, " ".join(os.path.basename(c) for c in cmd[1:]) +
                    ("" if p.returncode == 0 else "\n" + p.stdout + p.stderr))

        # --- every dashboard expression through Prometheus ------------------
        # Until Prometheus has scraped the load's last counts, then two scrapes more, so
        # that rates over the load see it (a fixed sleep was a guess about a busy machine).
        last_tokens = parse_metrics(http_get(metrics_url))["mcserve_generation_tokens_total"]
        wait_for("Prometheus to scrape the load", lambda: any(
            float(r["value"][1]) == last_tokens for r in query("mcserve_generation_tokens_total")), 30)
        time.sleep(2)
        print("\ndashboard panels (each expression evaluated by Prometheus):")
        for path in sorted(glob.glob(os.path.join(DEPLOY, "grafana", "dashboards", "*.json"))):
            dash = json.load(open(path))
            print(f"  {os.path.relpath(path, ROOT)}: {dash['title']}")
            for panel in dash["panels"]:
                for t in panel.get("targets", []):
                    expr = t["expr"].replace("$__rate_interval", "1m")
                    res = query(expr)
                    vals = [float(r["value"][1]) for r in res]
                    finite = [v for v in vals if math.isfinite(v)]
                    label = f"{panel['title']} [{t.get('legendFormat', '')}]"
                    f.check(bool(finite), f"{label}: {len(res)} series, e.g. {finite[0]:.6g}"
                            if finite else f"{label}: no data for {expr}")

        print("\nrecording rules (evaluated by Prometheus, queried by name):")
        rules = json.loads(http_get(prom_url + "/api/v1/rules"))["data"]["groups"]
        for g in rules:
            for r in g["rules"]:
                f.check(r["health"] == "ok", f"{g['name']}/{r['name']}: health {r['health']}")
                if r["type"] == "recording":
                    res = wait_for(r["name"], lambda: [x for x in query(r["name"])
                                                       if math.isfinite(float(x["value"][1]))], 10)
                    f.check(bool(res), f"  {r['name']}: {len(res)} series")

        server.send_signal(signal.SIGTERM)
        f.check(server.wait(timeout=30) == 0, "server exits 0 on SIGTERM")
        print("\n(no Grafana server was run: the dashboard's queries were evaluated by a real "
              "Prometheus scraping the real server)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return f.finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
