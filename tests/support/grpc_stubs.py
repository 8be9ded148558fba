"""Python stubs for mcserve.v1, generated at test time from proto/ with protoc
and Debian's grpc_python_plugin (python3-grpcio, python3-protobuf)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def generate_stubs(out):
    """Writes mcserve/v1/generation_pb2{,_grpc}.py under `out` and makes them importable."""
    subprocess.run(["protoc", f"--python_out={out}", f"--grpc_out={out}",
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin",
                    f"-I{os.path.join(ROOT, 'proto')}", "mcserve/v1/generation.proto"], check=True)
    for d in ("mcserve", "mcserve/v1"):
        open(os.path.join(out, d, "__init__.py"), "a").close()
    sys.path.insert(0, out)
