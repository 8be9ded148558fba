"""A real Prometheus scraping the server's /metrics over HTTPS with a bearer
token, as a cluster's Prometheus would (scrape_config scheme https,
tls_config ca_file, authorization credentials_file).

Makes a CA and a server certificate with openssl, starts the real mcserve
binary with --metrics_tls_cert/--metrics_tls_key/--metrics_bearer_token_file
and Debian's Prometheus with three jobs: the right token (must be up), a
wrong token (must be down with a 401), and plain HTTP (must be down); and
checks that no log line of the server holds the token.

  /usr/bin/python3 tests/observability/prometheus_tls_test.py --server BIN --model DIR
"""
import argparse
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from checks import Checks, free_port, wait_for  # noqa: E402

TOKEN = "scrape-token-6f1c2a"


def sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def make_certs(d):
    """A CA, and a server certificate for localhost / 127.0.0.1 signed by it."""
    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
       "/CN=mcserve test CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
       "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")
    with open(f"{d}/ext.cnf", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey",
       f"{d}/ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{d}/ext.cnf",
       "-out", f"{d}/server.pem")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    args = ap.parse_args()
    f = Checks()
    tmp = tempfile.mkdtemp(prefix="mcserve_prom_tls_")
    procs = []
    try:
        make_certs(tmp)
        with open(f"{tmp}/token", "w") as t:
            t.write(TOKEN + "\n")
        with open(f"{tmp}/wrong-token", "w") as t:
            t.write("not-the-token\n")
        mport_file = f"{tmp}/mport"
        server_log_path = f"{tmp}/server.log"
        server = subprocess.Popen(
            [args.server, f"--model={args.model}", "--listen=127.0.0.1:0",
             "--metrics_listen=127.0.0.1:0", f"--metrics_port_file={mport_file}",
             f"--metrics_tls_cert={tmp}/server.pem", f"--metrics_tls_key={tmp}/server.key",
             f"--metrics_bearer_token_file={tmp}/token", "--threads=1"],
            stdout=open(server_log_path, "w"), stderr=subprocess.STDOUT)
        procs.append(server)
        wait_for("metrics port", lambda: os.path.exists(mport_file) and open(mport_file).read())
        target = "127.0.0.1:" + open(mport_file).read().strip()

        # Python's own HTTPS client, verifying against the CA: the token decides.
        ctx = ssl.create_default_context(cafile=f"{tmp}/ca.pem")
        req = urllib.request.Request(f"https://{target}/metrics",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        body = urllib.request.urlopen(req, context=ctx, timeout=10).read().decode()
        f.check("mcserve_" in body, "HTTPS scrape with the token: metrics")
        try:
            urllib.request.urlopen(f"https://{target}/metrics", context=ctx, timeout=10)
            f.check(False, "HTTPS scrape without a token must be refused")
        except urllib.error.HTTPError as e:
            f.check(e.code == 401, f"HTTPS scrape without a token: {e.code}")

        prom_port = free_port()
        prom_url = f"http://127.0.0.1:{prom_port}"
        config = f"{tmp}/prometheus.yml"
        tls = f"""    scheme: https
    tls_config:
      ca_file: {tmp}/ca.pem
"""
        with open(config, "w") as c:
            c.write(f"""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: tls_token
{tls}    authorization:
      credentials_file: {tmp}/token
    static_configs:
      - targets: ["{target}"]
  - job_name: tls_wrong_token
{tls}    authorization:
      credentials_file: {tmp}/wrong-token
    static_configs:
      - targets: ["{target}"]
  - job_name: plain_http
    static_configs:
      - targets: ["{target}"]
""")
        prom = subprocess.Popen(
            [args.prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=open(f"{tmp}/prometheus.log", "w"), stderr=subprocess.STDOUT)
        procs.append(prom)

        def targets():
            r = json.loads(urllib.request.urlopen(prom_url + "/api/v1/targets", timeout=10).read())
            return {t["labels"]["job"]: t for t in r["data"]["activeTargets"]}

        def scraped():
            t = targets()
            return len(t) == 3 and all(x["health"] != "unknown" for x in t.values()) and t

        t = wait_for("three scraped targets", scraped, timeout=60)

        def settled():  # a first scrape of a busy server may time out: wait for the next ones
            t = targets()
            return (t["tls_token"]["health"] == "up" and t["tls_wrong_token"]["health"] == "down"
                    and "401" in t["tls_wrong_token"]["lastError"] and t["plain_http"]["health"] == "down"
                    and t)
        try:
            t = wait_for("the targets' health to settle", settled, timeout=30)
        except AssertionError:
            t = targets()  # the checks below say what is wrong
        f.check(t["tls_token"]["health"] == "up",
                f"Prometheus over HTTPS with the token: {t['tls_token']['health']} "
                f"{t['tls_token']['lastError']!r}")
        f.check(t["tls_wrong_token"]["health"] == "down" and "401" in
                t["tls_wrong_token"]["lastError"],
                f"Prometheus with a wrong token: {t['tls_wrong_token']['health']} "
                f"{t['tls_wrong_token']['lastError']!r}")
        f.check(t["plain_http"]["health"] == "down",
                f"Prometheus over plain HTTP: {t['plain_http']['health']} "
                f"{t['plain_http']['lastError']!r}")
        q = urllib.parse.urlencode({"query": 'mcserve_sessions_active{job="tls_token"}'})
        res = json.loads(urllib.request.urlopen(f"{prom_url}/api/v1/query?{q}", timeout=10).read())
        f.check(bool(res["data"]["result"]), "a server metric queried through Prometheus")

        server.send_signal(signal.SIGTERM)
        f.check(server.wait(timeout=30) == 0, "server exits 0 on SIGTERM")
        log = open(server_log_path).read()
        f.check(TOKEN not in log, "the token appears in no server log line")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return f.finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
