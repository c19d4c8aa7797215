"""The generated gRPC code for ``features.proto``, compiled with grpcio-tools on first import.

Nothing generated is checked in: the first import in a process compiles the ``.proto`` into a
cache directory keyed by the file's hash (under the system temp dir, or ``YR_PROTO_BUILD_DIR``),
puts it on ``sys.path`` and imports the modules. Serve's gRPC proxy imports
:func:`add_FeatureServiceServicer_to_server` from here, so every process compiles or reuses the
same build.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pathlib
import sys
import tempfile
from types import ModuleType

PROTO = pathlib.Path(__file__).with_name("features.proto")
SERVICER_FUNCTION = "apps.features.grpc_api.add_FeatureServiceServicer_to_server"
"""Import path to list in Serve's ``grpc_servicer_functions``."""


def build_dir() -> pathlib.Path:
    """Where the generated modules for the current ``features.proto`` live."""
    digest = hashlib.sha256(PROTO.read_bytes()).hexdigest()[:16]
    root = pathlib.Path(os.environ.get("YR_PROTO_BUILD_DIR", tempfile.gettempdir()))
    return root / f"yuanrong-features-proto-{digest}"


def compile_proto() -> pathlib.Path:
    """Compile ``features.proto`` unless this version was already compiled; returns the build dir."""
    target = build_dir()
    if (target / "features_pb2_grpc.py").exists():
        return target
    from grpc_tools import protoc

    staging = pathlib.Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    code = protoc.main(["grpc_tools.protoc", f"-I{PROTO.parent}", f"--python_out={staging}",
                        f"--grpc_python_out={staging}", str(PROTO)])
    if code != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with exit code {code} compiling {PROTO}.")
    try:
        os.rename(staging, target)  # atomic: concurrent compilers race, one wins, all see a full build
    except OSError:
        if not (target / "features_pb2_grpc.py").exists():
            raise
    return target


def _load() -> tuple[ModuleType, ModuleType]:
    path = str(compile_proto())
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module("features_pb2"), importlib.import_module("features_pb2_grpc")


pb2, pb2_grpc = _load()
add_FeatureServiceServicer_to_server = pb2_grpc.add_FeatureServiceServicer_to_server
FeatureServiceStub = pb2_grpc.FeatureServiceStub
UserRequest = pb2.UserRequest
UsersRequest = pb2.UsersRequest
Features = pb2.Features
