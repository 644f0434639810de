"""Builds the package after generating the gRPC stubs of ../../proto/isoflop/v1/*.proto.

The stubs are generated at build time, never committed, so they always match the coordinator built from the same
checkout. Generator: `protoc` with `grpc_python_plugin` (Debian: protobuf-compiler, protobuf-compiler-grpc), else
the `grpc_tools` package (PyPI grpcio-tools). The proto directory is ISOFLOP_PROTO_DIR or ../../proto next to this
file (pip builds in the source tree).
"""
import glob
import os
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))


def generate_stubs():
    proto_root = os.environ.get("ISOFLOP_PROTO_DIR", os.path.join(HERE, "..", "..", "proto"))
    protos = sorted(glob.glob(os.path.join(proto_root, "isoflop", "v1", "*.proto")))
    if not protos:
        sys.exit(f"isoflop-client: no .proto files under {proto_root}/isoflop/v1 (set ISOFLOP_PROTO_DIR)")
    out = HERE  # generates isoflop/v1/*_pb2.py and *_pb2_grpc.py beside the package's sources
    protoc, plugin = shutil.which("protoc"), shutil.which("grpc_python_plugin")
    if protoc and plugin:
        cmd = [protoc, f"--plugin=protoc-gen-grpc_python={plugin}", f"-I{proto_root}",
               f"--python_out={out}", f"--grpc_python_out={out}", *protos]
    else:
        try:
            import grpc_tools  # noqa: F401
        except ImportError:
            sys.exit("isoflop-client: need protoc and grpc_python_plugin (apt-get install protobuf-compiler "
                     "protobuf-compiler-grpc) or grpcio-tools (pip install grpcio-tools) to generate the stubs")
        cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_root}",
               f"--python_out={out}", f"--grpc_python_out={out}", *protos]
    subprocess.run(cmd, check=True)


class BuildWithStubs(build_py):
    def run(self):
        generate_stubs()
        super().run()


setup(cmdclass={"build_py": BuildWithStubs})
