"""Certificates and a principals file made at test time (openssl), laid out as
a kubernetes.io/tls Secret: DIR/ca.crt, DIR/tls.crt, DIR/tls.key (a server
certificate for the given DNS names and 127.0.0.1, signed by the CA), and
DIR/principals + DIR/token (one bearer token, stored as its SHA-256)."""
import hashlib
import os
import subprocess


def _sh(*cmd):
    subprocess.run(cmd, check=True, capture_output=True)


def make_tls_files(d, token, principal, role, dns=("localhost",)):
    os.makedirs(d, exist_ok=True)
    _sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=mcserve test CA", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
    _sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={dns[0]}",
        "-keyout", f"{d}/tls.key", "-out", f"{d}/server.csr")
    san = ",".join([f"DNS:{n}" for n in dns] + ["IP:127.0.0.1"])
    open(f"{d}/ext.cnf", "w").write(f"subjectAltName={san}\n")
    _sh("openssl", "x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey",
        f"{d}/ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{d}/ext.cnf",
        "-out", f"{d}/tls.crt")
    digest = hashlib.sha256(token.encode()).hexdigest()
    open(f"{d}/principals", "w").write(f"token {digest} {principal} {role}\n")
    open(f"{d}/token", "w").write(token)
