"""Mutation testing of the pure core with mutmut, against the unit tests only.

Copies the working tree to ``.local/mutation/`` (so the checkout is never
touched and every run starts fresh), configures mutmut there, runs it and
prints per module ``killed/total`` and the surviving mutants. A timeout counts
as killed (the mutant made the tests hang: they noticed); "no tests" counts as
survived. ``--show`` prints each survivor's diff. See docs/testing.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".local" / "mutation"
MUTMUT = Path(sys.executable).with_name("mutmut")

#: The pure core; a module that does not exist (yet) is skipped. Add new ones here.
MODULES = (
    "connector/offsets/tracker.py",
    "connector/delivery/dispatcher.py",
    "connector/delivery/lanes.py",
    "connector/delivery/gate.py",
    "connector/delivery/ownership.py",
    "connector/cdp/answer.py",
    "connector/delivery/retry.py",
    "connector/mapping/compiler.py",
    "connector/mapping/conditions.py",
    "connector/mapping/fit.py",
    "connector/settle/stage.py",
)
#: Data files the unit tests read (mutmut copies the package and tests/ itself).
ALSO_COPY = ("avro", "config", "docs", "helm", "scripts", "README.md")

KILLED = {1, 3}  # pytest failed / internal error: a test noticed
TIMEOUT = {24, -24, 36, 152, 255}  # the mutant made the tests hang: noticed too


def copy_tree(dest: Path) -> None:
    """Tracked and untracked (not ignored) files of the working tree, as they are now."""
    if dest.exists():
        shutil.rmtree(dest)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"],  # noqa: S607 - git on PATH
        cwd=ROOT, check=True, capture_output=True,
    ).stdout.split(b"\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name.decode()
        if source.is_file():
            target = dest / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def configure(dest: Path, modules: list[str]) -> None:
    config = {
        "source_paths": ["connector"],
        "only_mutate": modules,
        "also_copy": list(ALSO_COPY),
        "pytest_add_cli_args_test_selection": ["tests/unit"],
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q"],
        "use_git_change_detection": False,
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in config.items()]
    with (dest / "pyproject.toml").open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")


def score(dest: Path, module: str) -> tuple[int, int, list[str]]:
    """(killed, total, survivor names) of one module after a run."""
    meta = dest / "mutants" / (module + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    survivors = [k for k, c in codes.items() if c not in KILLED | TIMEOUT]
    return len(codes) - len(survivors), len(codes), sorted(survivors, key=_natural)


def _natural(name: str) -> tuple[str, int]:
    head, _, number = name.rpartition("_")
    return head, int(number) if number.isdigit() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"default: {' '.join(MODULES)}")
    parser.add_argument("--jobs", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--show", action="store_true", help="print each survivor's diff")
    args = parser.parse_args(argv)
    modules = [m for m in (args.modules or MODULES) if (ROOT / m).is_file()]
    if not modules:
        parser.error("none of the modules exists")
    started = time.monotonic()
    copy_tree(WORK)
    configure(WORK, modules)
    log = WORK / "mutmut.log"
    with log.open("wb") as out:
        run = subprocess.run(  # noqa: S603 - fixed argv: the venv's mutmut
            [str(MUTMUT), "run", "--max-children", str(args.jobs)],
            cwd=WORK, stdout=out, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    if run.returncode != 0:
        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        print(f"mutation: mutmut failed ({run.returncode}); log: {log}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - started
    totals: Counter[str] = Counter()
    rows = []
    for module in modules:
        killed, total, survivors = score(WORK, module)
        totals.update(killed=killed, total=total)
        rows.append((module, killed, total, survivors))
        pct = 100 * killed / total if total else 100.0
        print(f"{module:34} {killed:4}/{total:<4} {pct:5.1f}% killed")
    all_pct = 100 * totals["killed"] / totals["total"] if totals["total"] else 100.0
    print(f"{'all':34} {totals['killed']:4}/{totals['total']:<4} {all_pct:5.1f}% killed"
          f"   ({elapsed:.0f} s, {args.jobs} jobs)")  # fmt: skip
    for module, _, _, survivors in rows:
        if survivors:
            print(f"\nsurvivors in {module}:")
        for name in survivors:
            if args.show:
                shown = subprocess.run(  # noqa: S603 - the venv's mutmut
                    [str(MUTMUT), "show", name], cwd=WORK, capture_output=True, text=True,
                    check=False,
                )  # fmt: skip
                print(shown.stdout.rstrip())
            else:
                print(f"  {name}")
    if any(survivors for *_, survivors in rows) and not args.show:
        print(f"\ndiff of one: cd {WORK.relative_to(ROOT)} && {MUTMUT} show NAME  (or --show)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
