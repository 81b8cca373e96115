"""Real text that ships with CPython, for the Quickstart job and for demos.

``python-docs`` is every help topic of the Python reference (``pydoc_data.topics``, the
text behind ``help("if")``) plus every docstring (module, class, function) in the
standard library's own source files, read with ``ast`` (nothing is imported or run).
It exists on any machine with Python, so the Quickstart needs no download.
"""

from __future__ import annotations

import ast
import gzip
import json
import sysconfig
from collections.abc import Iterator
from pathlib import Path

_SKIP_PARTS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "lib2to3"}


def python_docs() -> Iterator[dict[str, str]]:
    """Yield ``{id, text, source}`` documents, in a stable order."""
    from pydoc_data.topics import topics

    for name in sorted(topics):
        yield {"id": f"pydoc_topics/{name}", "text": topics[name], "source": "pydoc_data.topics"}
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        relative = path.relative_to(stdlib)
        if _SKIP_PARTS.intersection(relative.parts):
            continue
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):
            continue
        module = ".".join(relative.with_suffix("").parts)
        for qualname, text in _docstrings(tree):
            ident = f"stdlib/{module}" + (f":{qualname}" if qualname else "")
            yield {"id": ident, "text": text, "source": "cpython-stdlib-docstring"}


def _docstrings(tree: ast.Module) -> Iterator[tuple[str, str]]:
    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, str]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                doc = ast.get_docstring(child)
                if doc:
                    yield name, doc
                yield from walk(child, f"{name}.")

    doc = ast.get_docstring(tree)
    if doc:
        yield "", doc
    yield from walk(tree, "")


def write_python_docs(folder: Path, shards: int) -> int:
    """Write the ``python-docs`` sample as ``python-docs-0000N.jsonl.gz``; return its size."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = list(python_docs())
    per_shard = -(-len(docs) // shards)
    for index in range(shards):
        chunk = docs[index * per_shard : (index + 1) * per_shard]
        final = folder / f"python-docs-{index:05d}.jsonl.gz"
        tmp = final.with_name(f".tmp-{final.name}")
        with gzip.open(tmp, "wt", encoding="utf-8") as handle:
            for doc in chunk:
                handle.write(json.dumps(doc, ensure_ascii=False) + "\n")
        tmp.replace(final)
    return len(docs)
