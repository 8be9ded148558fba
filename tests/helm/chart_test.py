"""The Helm chart (helm/mcserve) with the real helm binary, no cluster:
  * helm lint --strict;
  * helm template with the default values and each file in tests/helm/values,
    the rendered YAML checked by yamllint, against the Kubernetes API schema
    (k8s_schema.py) and by assertions on probes, ports, resources, security
    context and the grace period;
  * the router's rendered nginx.conf passes `nginx -t`;
  * the server flag file the chart renders is accepted by the real mcserve
    binary, which then serves; with TLS and auth on (tests/helm/values/tls-auth.yaml),
    over a real TLS handshake with certificates made by openssl, a token from the
    principals file, and probes on the plaintext health port;
  * bad values are refused (schema or chart checks), each with its reason.

  /usr/bin/python3 tests/helm/chart_test.py --helm BIN --server BIN --cli BIN --model DIR
"""
import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

import k8s_schema  # noqa: E402 (beside this file)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "support"))
from checks import Checks  # noqa: E402
from tls_files import make_tls_files  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "helm", "mcserve")
VALUES = sorted(glob.glob(os.path.join(ROOT, "tests", "helm", "values", "*.yaml")))
YAMLLINT = "{extends: default, rules: {line-length: disable, document-start: disable, " \
           "comments: disable, comments-indentation: disable, indentation: {indent-sequences: whatever}}}"

BAD_VALUES = [  # (--set arguments, expected text in helm's error)
    (["server.lossyEviction=evict"], "lossyEviction"),
    (["server.device=tpu"], "device"),
    (["server.checkpointPool=lots"], "checkpointPool"),
    (["replicaCount=0"], "replicaCount"),
    (["ports.grpc=70000"], "grpc"),
    (["server.typo=1"], "typo"),
    (["terminationGracePeriodSeconds=40"], "must exceed server.shutdownGrace"),
    (["persistence.enabled=true", "replicaCount=2"], "ReadWriteMany"),
    (["server.extraFlags={not-a-flag}"], "extraFlags"),
    (["tls.enabled=true"], "tls.secretName"),
    (["tls.clientCaSecretName=ca"], "needs tls.enabled"),
    (["tls.enabled=true", "tls.secretName=s", "tls.clientCaSecretName=ca", "router.enabled=true"],
     "cannot pass client certificates"),
    (["auth.enabled=true"], "auth.secretName"),
    (["networkPolicy.enabled=true"], "grpcFrom"),
    (["server.quota.requests=-1"], "requests"),
]
TOKEN = "chart-test-token-4b1d"


def make_tls(d):
    """The TLS and principals Secrets' files (TOKEN as a reader)."""
    make_tls_files(d, TOKEN, "chart", "reader", dns=("localhost", "mcserve.internal"))


def seconds(d):
    m = re.fullmatch(r"(\d+)(s|m|h)", d)
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600}[m.group(2)] if m else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--helm", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "default"))
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    args = ap.parse_args()
    checks = Checks()
    check = checks.check
    tmp = tempfile.mkdtemp(prefix="mcserve_helm_")

    def helm(*a):
        return subprocess.run([args.helm, *a], capture_output=True, text=True)

    p = helm("lint", "--strict", CHART)
    check(p.returncode == 0, "helm lint --strict" + ("" if p.returncode == 0 else "\n" + p.stdout + p.stderr))
    for f in [None] + VALUES:
        name = os.path.basename(f) if f else "default values"
        print(f"\nhelm template ({name}):")
        p = helm("template", "t", CHART, *(["-f", f] if f else []))
        if p.returncode != 0:
            check(False, f"renders: {p.stderr}")
            continue
        rendered = os.path.join(tmp, f"{name}.yaml")
        open(rendered, "w").write(p.stdout)
        lint = subprocess.run(["yamllint", "-d", YAMLLINT, rendered], capture_output=True, text=True)
        check(lint.returncode == 0, "yamllint" + ("" if lint.returncode == 0 else "\n" + lint.stdout))
        docs = [d for d in yaml.safe_load_all(p.stdout) if d]
        by_kind = {}
        for d in docs:
            what = f"{d.get('kind')} {d.get('metadata', {}).get('name')}"
            checked, errors = k8s_schema.validate(d)
            if checked:
                check(not errors, f"{what}: valid against the Kubernetes API schema"
                      + ("" if not errors else "\n    " + "\n    ".join(errors)))
            else:
                print(f"  --    {what}: custom resource, schema not available offline")
            by_kind.setdefault(d["kind"], []).append(d)
        values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
        if f:
            over = yaml.safe_load(open(f))
            for k, v in over.items():
                values[k] = {**values[k], **v} if isinstance(v, dict) and isinstance(values.get(k), dict) else v
        server = [d for d in by_kind["Deployment"] if d["metadata"]["name"] == "t-mcserve"][0]
        spec = server["spec"]["template"]["spec"]
        c = spec["containers"][0]
        ports = {x["name"]: x["containerPort"] for x in c["ports"]}
        tls = values["tls"]["enabled"]
        want_ports = {"grpc": values["ports"]["grpc"], "metrics": values["ports"]["metrics"]}
        if tls:
            want_ports["health"] = values["ports"]["health"]
        http = values["http"]["enabled"]
        if http:
            want_ports["http"] = values["ports"]["http"]
        check(ports == want_ports, f"container ports {ports}")
        probe_port = values["ports"]["health" if tls else "grpc"]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            check(c.get(probe, {}).get("grpc", {}).get("port") == probe_port,
                  f"{probe}: gRPC health on the {'plaintext health' if tls else 'gRPC'} port")
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in spec["volumes"]}
        if tls:
            check(vols[mounts["/etc/mcserve/tls"]]["secret"]["secretName"] == values["tls"]["secretName"]
                  and "subPath" not in str(c["volumeMounts"]),
                  "TLS Secret mounted whole at /etc/mcserve/tls (updates reach the files)")
        if values["auth"]["enabled"]:
            check(vols[mounts["/etc/mcserve/auth"]]["secret"]["secretName"] == values["auth"]["secretName"],
                  "principals Secret mounted at /etc/mcserve/auth")
        if values["networkPolicy"]["enabled"]:
            np = by_kind["NetworkPolicy"][0]["spec"]
            rule_ports = [[p["port"] for p in r["ports"]] for r in np["ingress"]]
            grpc_rule = [r for r in np["ingress"] if r["ports"][0]["port"] == "grpc"][0]
            check(np["policyTypes"] == ["Ingress"] and ["grpc"] in rule_ports
                  and len(grpc_rule["from"]) == len(values["networkPolicy"]["grpcFrom"])
                  + (1 if values["router"]["enabled"] else 0)
                  and (["health"] in rule_ports) == tls
                  and (["http"] in rule_ports) == bool(http and values["networkPolicy"]["httpFrom"]),
                  f"NetworkPolicy: gRPC from the router and grpcFrom only, rules {rule_ports}")
        gpu = values["server"]["device"].startswith("cuda")
        has_gpu = c.get("resources", {}).get("limits", {}).get("nvidia.com/gpu") == values["gpus"]
        check(has_gpu == gpu, f"GPU limit {'present' if has_gpu else 'absent'} for device "
              f"{values['server']['device']}")
        grace = spec["terminationGracePeriodSeconds"]
        check(grace > seconds(values["server"]["shutdownGrace"]),
              f"terminationGracePeriodSeconds {grace} > shutdownGrace {values['server']['shutdownGrace']}")
        psc, csc = spec["securityContext"], c["securityContext"]
        check(psc.get("runAsNonRoot") and csc.get("readOnlyRootFilesystem")
              and not csc.get("allowPrivilegeEscalation"), "non-root, read-only root fs")
        check(c["args"] == ["--flagfile=/etc/mcserve/flags"], "server reads the ConfigMap flag file")
        svcs = {d["metadata"]["name"]: d for d in by_kind["Service"]}
        check(svcs["t-mcserve-headless"]["spec"]["clusterIP"] == "None", "headless Service")
        check({x["name"] for x in svcs["t-mcserve"]["spec"]["ports"]} == {"grpc", "metrics"} | ({"http"} if http else set()),
              "Service exposes grpc and metrics" + (" and http" if http else ""))
        expect = {"PodDisruptionBudget": values["podDisruptionBudget"]["enabled"],
                  "PersistentVolumeClaim": values["persistence"]["enabled"],
                  "ServiceMonitor": values["serviceMonitor"]["enabled"],
                  "HorizontalPodAutoscaler": values["autoscaling"]["enabled"],
                  "NetworkPolicy": values["networkPolicy"]["enabled"]}
        for kind, want in expect.items():
            check((kind in by_kind) == want, f"{kind} {'rendered' if want else 'absent'}")
        check(("replicas" in server["spec"]) != values["autoscaling"]["enabled"],
              "replicas set unless the HPA owns them")

        # The flag file, run by the real server (device and paths made local).
        flags = [x for x in by_kind["ConfigMap"] if x["metadata"]["name"] == "t-mcserve"][0]
        flagfile = os.path.join(tmp, f"{name}.flags")
        secrets = os.path.join(tmp, "secrets")
        text = flags["data"]["flags"]
        if tls or values["auth"]["enabled"]:
            make_tls(secrets)
            # The Secrets' mount points, made local; the health port picked by the kernel.
            text = (text.replace("/etc/mcserve/tls/", secrets + "/")
                    .replace("/etc/mcserve/auth/", secrets + "/")
                    .replace(f"--health_listen=0.0.0.0:{values['ports']['health']}",
                             "--health_listen=127.0.0.1:0"))
        text = text.replace(f"--http_listen=0.0.0.0:{values['ports']['http']}", "--http_listen=127.0.0.1:0")
        open(flagfile, "w").write(text)
        port_file = os.path.join(tmp, f"{name}.port")
        health_file = os.path.join(tmp, f"{name}.health_port")
        log = open(os.path.join(tmp, f"{name}.server.log"), "w")
        srv = subprocess.Popen(
            [args.server, f"--flagfile={flagfile}", f"--model={args.model}", "--device=cpu",
             "--listen=127.0.0.1:0", f"--port_file={port_file}", "--metrics_listen=127.0.0.1:0",
             f"--health_port_file={health_file}", f"--http_port_file={tmp}/{name}.http_port",
             "--checkpoint_pool=64MiB", "--host_pool=64MiB", f"--session_dir={tmp}/sessions"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while not os.path.exists(port_file) and srv.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        served = False
        if os.path.exists(port_file):
            addr = "127.0.0.1:" + open(port_file).read().strip()
            cli = [args.cli, f"--addr={addr}"]
            if tls:
                cli += [f"--tls_ca={secrets}/ca.crt", "--tls_server_name=localhost"]
                # The probes' port: plaintext, health only.
                h = subprocess.run([args.cli, "--addr=127.0.0.1:" + open(health_file).read().strip(),
                                    "health"], capture_output=True, text=True)
                check(h.stdout.strip() == "SERVING", "plaintext health port SERVING (the probes')")
                plain = subprocess.run([args.cli, f"--addr={addr}", "--timeout=5", "health"],
                                       capture_output=True, text=True)
                check(plain.returncode != 0, "the gRPC port refuses plaintext")
            h = subprocess.run(cli + ["health"], capture_output=True, text=True)
            served = h.stdout.strip() == "SERVING"
            if values["auth"]["enabled"]:
                anon = subprocess.run(cli + ["info"], capture_output=True, text=True)
                check(anon.returncode != 0 and "UNAUTHENTICATED" in anon.stderr,
                      "no token: UNAUTHENTICATED" + ("" if anon.returncode else f" ({anon.stdout})"))
                ok = subprocess.run(cli + [f"--token_file={secrets}/token", "info"],
                                    capture_output=True, text=True)
                check(ok.returncode == 0 and "vocab" in ok.stdout,
                      "the principals file's token is served over TLS" + ("" if ok.returncode == 0
                                                                          else f" ({ok.stderr})"))
            if http:
                scheme = "https" if tls else "http"
                curl = ["curl", "-s", "--max-time", "20"] + (["--cacert", f"{secrets}/ca.crt"] if tls else [])
                if values["auth"]["enabled"]:
                    curl += ["-H", "Authorization: Bearer " + open(f"{secrets}/token").read().strip()]
                hp = open(f"{tmp}/{name}.http_port").read().strip()
                models = subprocess.run(curl + [f"{scheme}://localhost:{hp}/v1/models"], capture_output=True,
                                        text=True).stdout
                want_id = values["http"]["modelName"] or os.path.basename(args.model.rstrip("/"))
                check(f'"id":"{want_id}"' in models,
                      f"the HTTP API serves /v1/models over {scheme} with the token: {models[:160]}")
            srv.send_signal(signal.SIGTERM)
        code = srv.wait(timeout=60)
        check(served and code == 0, "mcserve accepts the rendered flag file, serves, exits 0"
              + ("" if served else "\n" + open(log.name).read()[-2000:]))

        if "t-mcserve-router" in {d["metadata"]["name"] for d in by_kind.get("ConfigMap", [])}:
            conf = [x for x in by_kind["ConfigMap"] if x["metadata"]["name"] == "t-mcserve-router"][0]
            text = conf["data"]["nginx.conf"]
            check("hash $mcserve_route consistent" in text and
                  "t-mcserve-headless.default.svc.cluster.local" in text,
                  "router hashes x-session-id over the headless Service")
            local = re.sub(r"server t-mcserve-headless\S+;", "server 127.0.0.1:50051;", text)
            local = local.replace("/tmp/", f"{tmp}/")
            if tls:
                local = local.replace("/etc/mcserve-tls/", os.path.join(tmp, "secrets") + "/")
                check("listen 0.0.0.0:50051 http2 ssl;" in text and "grpc_pass grpcs://" in text
                      and "grpc_ssl_verify on;" in text,
                      "router terminates TLS and re-encrypts to the replicas, checking their certificate")
            conf_path = os.path.join(tmp, "router.conf")
            open(conf_path, "w").write(local)
            t = subprocess.run([args.nginx, "-t", "-p", tmp, "-c", conf_path],
                               capture_output=True, text=True)
            check(t.returncode == 0, "nginx -t on the rendered router config"
                  + ("" if t.returncode == 0 else "\n" + t.stderr))

    print("\nbad values are refused:")
    for sets, reason in BAD_VALUES:
        p = helm("template", "t", CHART, *sum((["--set", s] for s in sets), []))
        check(p.returncode != 0 and reason in p.stderr,
              f"{' '.join(sets)}: refused ({reason})" + ("" if p.returncode else " -- it rendered"))

    print("\n(no Kubernetes cluster was run: manifests were rendered and checked offline)")
    return checks.finish(tmp)


if __name__ == "__main__":
    sys.exit(main())
