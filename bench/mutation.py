"""Mutation testing of the core with mutmut (not part of CI: it takes a long while).

Copies the repository's tracked files to a temporary directory (next to a link to
``../shared``), configures mutmut there, runs it on the chosen core modules against the core's
own test files, and writes the score and the surviving mutants of that run to
``bench/mutation/<module>.md`` (the per-module summary and the triage are written by hand in
``bench/mutation.md``).

A run may be limited honestly: ``--sample N --seed S`` tests a seeded random sample of N of the
generated mutants, ``--only NAME...`` tests the named mutants (mutmut names or globs, e.g. the
survivors of an earlier run). Every other mutant is marked ``skipped`` before the run, is left
out of the score, and the result file says it is a sample and how many mutants there were.

    .venv/bin/pip install mutmut==3.8.1
    nice -n 10 .venv/bin/python bench/mutation.py                     # claimsengine/grants/ (default)
    nice -n 10 .venv/bin/python bench/mutation.py --paths claimsengine/steps.py --max-children 2
    nice -n 10 .venv/bin/python bench/mutation.py --paths claimsengine/model.py --sample 300 --seed 12
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "mutation"
# The golden cases and the engine tests (the Hypothesis properties are too slow to run per mutant here).
TESTS = ["tests/test_engine.py", "tests/test_specs.py"]
SKIPPED = 34  # mutmut's exit code for "skipped": not part of this run, not part of the score
# Generates the mutants without running anything (the first steps of ``mutmut run``), so that a
# sample can be chosen from the complete list before any mutant is tested.
GENERATE = """
from pathlib import Path
from mutmut.__main__ import create_mutants
from mutmut.mutation.trampoline import set_mutant_under_test
from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths
set_mutant_under_test("mutant_generation")
Path("mutants").mkdir(exist_ok=True)
copy_src_dir()
copy_also_copy_files()
setup_source_paths()
create_mutants(1)
"""
STATUS = re.compile(r"\s*(\S+): (\w[\w ]*)$")


def copy_repository(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name, follow_symlinks=False)


def configure(repo: Path, paths: list[str], tests: list[str]) -> None:
    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(f'"{i}"' for i in items) + "]"

    with (repo / "pyproject.toml").open("a") as config:
        config.write(
            "\n[tool.mutmut]\n"
            f"source_paths = {toml_list(paths)}\n"
            f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
            'pytest_add_cli_args = ["--no-cov", "-p", "no:cacheprovider", "-q", "-x"]\n'
            'also_copy = ["claimsengine/", "specs/", "tests/", "docs/"]\n'
        )


def select(repo: Path, sample: int | None, seed: int, only: list[str]) -> tuple[int, int]:
    """Mark every mutant outside the sample (or outside ``only``) as skipped; return (selected, generated)."""
    metas = sorted((repo / "mutants").rglob("*.py.meta"))
    names = sorted(name for meta in metas for name in json.loads(meta.read_text())["exit_code_by_key"])
    if only:
        chosen = {n for n in names if any(n == pattern or fnmatch.fnmatch(n, pattern) for pattern in only)}
    else:
        chosen = set(random.Random(seed).sample(names, min(sample or len(names), len(names))))  # noqa: S311 (a reproducible sample, not a secret)
    for meta in metas:
        data = json.loads(meta.read_text())
        data["exit_code_by_key"] = {k: (v if k in chosen else SKIPPED) for k, v in data["exit_code_by_key"].items()}
        meta.write_text(json.dumps(data, indent=4))
    return len(chosen), len(names)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paths", nargs="+", default=["claimsengine/grants/"], help="core files or folders to mutate")
    parser.add_argument("--tests", nargs="+", default=TESTS, help="test files to run against each mutant")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--sample", type=int, help="test a seeded random sample of this many mutants")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--only", nargs="+", default=[], help="test only these mutant names or globs")
    parser.add_argument("--output", type=Path, help="result file (default bench/mutation/<module>.md)")
    args = parser.parse_args()
    slug = "-".join(Path(p.rstrip("/")).stem for p in args.paths)
    output: Path = args.output or RESULTS / f"{slug}{'-sample' if args.sample else ''}{'-rerun' if args.only else ''}.md"
    mutmut = Path(sys.executable).parent / "mutmut"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip():
        commit += " plus uncommitted changes"  # the copy is of the working tree
    with tempfile.TemporaryDirectory(prefix="claimsengine-mutation-") as tmp:
        repo = Path(tmp) / ROOT.name
        repo.mkdir()
        shared = ROOT.parent / "shared"
        if shared.exists():
            (Path(tmp) / "shared").symlink_to(shared)
        copy_repository(repo)
        configure(repo, args.paths, args.tests)
        started, load_before = time.monotonic(), os.getloadavg()[0]
        started_utc = time.strftime("%H:%M UTC", time.gmtime())
        selected = generated = 0
        if args.sample or args.only:
            subprocess.run([sys.executable, "-c", GENERATE], cwd=repo, check=True, capture_output=True)
            selected, generated = select(repo, args.sample, args.seed, args.only)
        run = subprocess.run([str(mutmut), "run", "--max-children", str(args.max_children)], cwd=repo, capture_output=True, text=True)
        seconds, load_after = time.monotonic() - started, os.getloadavg()[0]
        results = subprocess.run([str(mutmut), "results", "--all", "true"], cwd=repo, capture_output=True, text=True).stdout
        found = [m for m in (STATUS.match(line) for line in results.splitlines()) if m]
        survivors = []
        for name in (m.group(1) for m in found if m.group(2) == "survived"):
            diff = subprocess.run([str(mutmut), "show", name], cwd=repo, capture_output=True, text=True).stdout
            survivors.append((name, diff.strip()))
        statuses = Counter(m.group(2) for m in found)
        # Neither killed nor survived nor left out (no tests, timeout, ...): named, to be triaged too.
        others = sorted((m.group(2), m.group(1)) for m in found if m.group(2) not in ("killed", "survived", "skipped"))
    if run.returncode != 0 and not statuses:
        print(run.stdout[-4000:], run.stderr[-4000:], file=sys.stderr)
        return 1
    killed = statuses.get("killed", 0)
    skipped = statuses.pop("skipped", 0)
    total = sum(statuses.values())
    # Mutants that no test reaches or that time out count against the score too; skipped ones are outside the run.
    score = 100.0 * killed / total if total else 0.0
    options = f" --sample {args.sample} --seed {args.seed}" if args.sample else ""
    options += f" --tests {' '.join(args.tests)}" if args.tests != TESTS else ""
    options += f" --only {' '.join(args.only)}" if args.only else ""
    options += f" --output {args.output}" if args.output else ""
    command = f"nice -n {os.nice(0)} python bench/mutation.py --paths {' '.join(args.paths)} --max-children {args.max_children}{options}"
    scope = ""
    if args.sample:
        scope = f" **Sample:** {selected} of the {generated} mutants (seed {args.seed}); the other {skipped} were skipped."
    elif args.only:
        scope = f" **Rerun of {selected} named mutants** of the {generated}; the other {skipped} were not rerun."
    lines = [
        f"# Mutation testing: `{' '.join(args.paths)}`",
        "",
        f"mutmut 3 at commit `{commit}`, tests: `{' '.join(args.tests)}`",
        f"({seconds / 60:.1f} min with {args.max_children} children from {started_utc}; load average {load_before:.1f} at the start,"
        f" {load_after:.1f} at the end). Command: `{command}`.{scope}",
        "",
        f"**Score: {killed}/{total} killed = {score:.1f}%** ("
        + ", ".join(f"{status}: {count}" for status, count in sorted(statuses.items()))
        + ")",
        "",
        "## Surviving mutants",
        "",
    ]
    for name, diff in survivors:
        lines += [f"### `{name}`", "", "```diff", diff, "```", ""]
    if others:
        lines += ["## Neither killed nor survived", ""]
        lines += [f"- `{name}`: {status}" for status, name in others]
        lines += [""]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text("\n".join(lines))
    print(f"score {score:.1f}% ({killed}/{total}); {len(survivors)} survivors; {seconds / 60:.1f} min; written to {output}")
    print(f"command: {shlex.join(sys.argv)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
