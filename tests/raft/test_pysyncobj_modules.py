"""Inside raft/, only the raft/pysyncobj_*.py modules import pysyncobj or
reach its private attributes (docs/architecture.md, contract 2): what we
depend on in a library with one maintainer stays in a few files."""

from __future__ import annotations

import ast
import re
from pathlib import Path

RAFT = Path(__file__).resolve().parents[2] / "raft"
PRIVATE = re.compile(r"_(SyncObj|FileJournal|ResizableFile|TcpConnection|TCPTransport)__\w+")


def imports_pysyncobj(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "pysyncobj" for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pysyncobj":
            return True
    return False


def test_only_the_pysyncobj_modules_touch_pysyncobj() -> None:
    offenders = []
    for path in sorted(RAFT.glob("*.py")):
        if path.name.startswith("pysyncobj_"):
            continue
        source = path.read_text()
        if imports_pysyncobj(ast.parse(source)) or PRIVATE.search(source):
            offenders.append(path.name)
    assert not offenders
    assert len(list(RAFT.glob("pysyncobj_*.py"))) >= 4
