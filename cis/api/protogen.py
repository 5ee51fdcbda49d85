"""Generates the gRPC stubs of cis.v1 from the .proto in the repo (run by `make proto`).

The stubs are build output (ignored by git): `python -m cis.api.protogen`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Generated from the repository root, so the stubs import each other as
# `cis.api.proto.cis_v1_pb2` (the proto package is still `cis.v1`).
REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO = REPO_ROOT / "cis" / "api" / "proto" / "cis_v1.proto"


def generate() -> int:
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "protoc", f"-I{REPO_ROOT}", f"-I{include}",
        f"--python_out={REPO_ROOT}", f"--grpc_python_out={REPO_ROOT}", f"--pyi_out={REPO_ROOT}",
        str(PROTO),
    ]
    return int(protoc.main(args))


if __name__ == "__main__":
    sys.exit(generate())
