"""Session affinity through the router: nginx (Debian's) on loopback in front
of three real mcserve processes, configured from
helm/mcserve/files/mcserve-router.conf.template; every call of a session goes
through nginx with the session id as x-session-id metadata (mcserve-cli adds
it), and each session must live, whole, on exactly one replica. Run twice:
in plaintext, and with TLS everywhere (nginx terminates TLS with the
servers' certificate and re-encrypts to the replicas, checking theirs
against the CA, as the chart configures it) and bearer-token auth.

  /usr/bin/python3 tests/routing/affinity_test.py --server BIN --cli BIN --model DIR
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from checks import Checks, free_port, start_mcserve, wait_for  # noqa: E402
from tls_files import make_tls_files  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REPLICAS = 3
SESSIONS = 12
TURNS = 3
TOKEN = "router-test-token-5e21"


def make_tls(d):
    make_tls_files(d, TOKEN, "tester", "user")


def fill(conf, tmp, router, backends, tls):
    """The router template with its placeholders filled, as the chart fills them."""
    conf = (conf.replace("${LISTEN}", router).replace("${PREFIX}", tmp)
            .replace("${BACKENDS}", "\n    ".join(f"server {b};" for b in backends)))
    if not tls:
        return (conf.replace("${LISTEN_SSL}", "").replace("${SERVER_TLS}", "")
                .replace("${UPSTREAM}", "grpc").replace("${UPSTREAM_TLS}", ""))
    return (conf.replace("${LISTEN_SSL}", " ssl")
            .replace("${SERVER_TLS}", f"ssl_certificate {tmp}/tls.crt; ssl_certificate_key {tmp}/tls.key;")
            .replace("${UPSTREAM}", "grpcs")
            .replace("${UPSTREAM_TLS}", f"grpc_ssl_verify on; grpc_ssl_trusted_certificate {tmp}/ca.crt; "
                     "grpc_ssl_server_name on; grpc_ssl_name localhost;"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "default"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    args = ap.parse_args()
    checks = Checks()
    for tls in (False, True):
        print(f"\n== {'TLS everywhere, bearer tokens' if tls else 'plaintext'} ==")
        tmp = tempfile.mkdtemp(prefix="mcserve_router_")
        run(args, checks, tmp, tls)
    return checks.finish(tmp)


def run(args, checks, tmp, tls):
    procs = []
    check = checks.check
    server_flags, cli_flags = [], []
    if tls:
        make_tls(tmp)
        server_flags = [f"--tls_cert={tmp}/tls.crt", f"--tls_key={tmp}/tls.key",
                        f"--auth_principals={tmp}/principals"]
        cli_flags = [f"--tls_ca={tmp}/ca.crt", "--tls_server_name=localhost",
                     f"--token_file={tmp}/token"]

    def cli(addr, *a):
        p = subprocess.run([args.cli, f"--addr={addr}", *cli_flags, *a], capture_output=True,
                           text=True, timeout=120)
        return p.returncode, p.stdout.strip(), p.stderr.strip()

    try:
        backends = []
        for i in range(REPLICAS):
            proc, port = start_mcserve(
                args.server, [f"--model={args.model}", "--metrics_listen=", "--threads=1", *server_flags],
                os.path.join(tmp, f"server{i}.log"))
            procs.append(proc)
            backends.append(f"127.0.0.1:{port}")

        router = f"127.0.0.1:{free_port()}"
        conf = open(os.path.join(ROOT, "helm", "mcserve", "files", "mcserve-router.conf.template")).read()
        conf = fill(conf, tmp, router, backends, tls)
        conf_path = os.path.join(tmp, "nginx.conf")
        open(conf_path, "w").write("master_process off;\ndaemon off;\n" + conf)
        nginx_log = open(os.path.join(tmp, "nginx.log"), "w")
        procs.append(subprocess.Popen([args.nginx, "-p", tmp, "-c", conf_path],
                                      stdout=nginx_log, stderr=subprocess.STDOUT))
        wait_for("nginx", lambda: cli(router, "health")[0] == 0)
        print(f"nginx {router} -> replicas {', '.join(backends)}")

        ids = [f"user-{i:02d}" for i in range(SESSIONS)]
        for sid in ids:
            rc, out, err = cli(router, "session", "create", sid)
            check(rc == 0 and out == sid, f"create {sid} through the router" + (f": {err}" if rc else ""))
        for turn in range(TURNS):
            for sid in ids:
                rc, _, err = cli(router, "generate", f"--session={sid}", "--max_tokens=3",
                                 "--ignore_eos", "--temperature=0", f"turn {turn} of {sid}. ")
                if rc != 0:
                    check(False, f"turn {turn} of {sid}: {err}")

        print("where each session lives (asked of every replica directly):")
        per_replica = [0] * REPLICAS
        for sid in ids:
            homes = []
            via_router = cli(router, "session", "get", sid)
            for i, b in enumerate(backends):
                rc, out, _ = cli(b, "session", "get", sid)
                if rc == 0:
                    homes.append((i, out))
            ok = len(homes) == 1 and homes[0][1] == via_router[1]
            if ok:
                per_replica[homes[0][0]] += 1
            tokens = [l for l in (homes[0][1] if homes else "").splitlines() if "num_tokens" in l]
            check(ok, f"{sid}: on replica {[h[0] for h in homes]} only, {tokens[0] if tokens else ''}")
        check(sum(1 for n in per_replica if n > 0) >= 2,
              f"sessions spread over replicas: {per_replica}")
        # A one-shot request (no session) is served too.
        rc, _, err = cli(router, "generate", "--max_tokens=2", "hello")
        check(rc == 0, "one-shot request through the router" + (f": {err}" if rc else ""))
        if tls:
            rc, _, err = subprocess.run([args.cli, f"--addr={router}", "info"], capture_output=True,
                                        text=True, timeout=60).returncode, "", ""
            check(rc != 0, "plaintext to the TLS router is refused")
        print("(nginx and the replicas ran on loopback; no Kubernetes cluster was run)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
