"""Generate snaplab/v1/*_pb2.py, .pyi and *_pb2_grpc.py from protos/ with grpcio-tools; --check verifies them."""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
# google/protobuf/*.proto (empty, timestamp, ...) ship inside grpcio-tools, not on the system.
WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")
INIT_TEXT = '"""Generated gRPC code: edit protos/ and run tools/gen_protos.py."""\n'


def _generate(out: Path) -> list[Path]:
    """Compile every proto into ``out``; returns the generated files relative to ``out``."""
    sources = sorted(p.relative_to(ROOT).as_posix() for p in PROTOS.rglob("*.proto"))
    if not sources:
        sys.exit("no .proto files under protos/")
    # Paths relative to -Iprotos make `package snaplab.v1` land in snaplab/v1 with unpatched imports.
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", "-Iprotos", f"-I{WELL_KNOWN}",
        f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", *sources,
    ]
    subprocess.run(cmd, cwd=ROOT, check=True)
    return sorted(p.relative_to(out) for p in out.rglob("*") if p.name.endswith(GENERATED_SUFFIXES))


def _committed() -> set[Path]:
    """Generated-looking files in the repo's package folders that mirror protos/ (to find stale ones)."""
    found: set[Path] = set()
    for top in (d.name for d in PROTOS.iterdir() if d.is_dir()):
        if (ROOT / top).is_dir():
            found |= {p.relative_to(ROOT) for p in (ROOT / top).rglob("*") if p.name.endswith(GENERATED_SUFFIXES)}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed generated code is out of date")
    args = parser.parse_args(argv)

    # Always generate into a temp dir first: --check compares, a normal run syncs and removes stale files.
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generated = _generate(out)
        packages = sorted({p.parent for p in generated})
        stale = sorted(_committed() - set(generated))
        changed = [p for p in generated if not (ROOT / p).is_file() or not filecmp.cmp(out / p, ROOT / p, shallow=False)]
        missing_init = [d / "__init__.py" for d in packages if not (ROOT / d / "__init__.py").is_file()]

        if args.check:
            problems = [f"differs: {p}" for p in changed] + [f"stale: {p}" for p in stale]
            problems += [f"missing: {p}" for p in missing_init]
            for line in problems:
                print(line, file=sys.stderr)
            if problems:
                print("generated code is out of date: run python3 tools/gen_protos.py", file=sys.stderr)
                return 1
            print(f"generated code is up to date ({len(generated)} files)")
            return 0

        for p in changed:
            (ROOT / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / p, ROOT / p)
        for p in stale:
            (ROOT / p).unlink()
        for p in missing_init:
            (ROOT / p).write_text(INIT_TEXT)
        for p in [*changed, *stale, *missing_init]:
            print(f"{'removed' if p in stale else 'wrote'} {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
