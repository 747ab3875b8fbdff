"""`make mutate`: mutation testing (mutmut) of the modules that guard data and patients.

mutmut 3 mutates code under src/ and matches each mutant to the module name the tests import, so
this stages a copy of the repository in build/mutation/ where those modules sit under src/ with
their import names (the API handler as `pancscan_function_api`, the name the Lambda loader gives it,
behind a link from functions/api/app.py), runs `mutmut run` there over the unit and integration
tests, and writes mutation/report.md: the score, every surviving mutant with its diff, and which of
them are listed as equivalent in mutation/equivalent.txt (each with its reason).

    python mutation/run.py [--jobs 2] [--fresh] [--survivors] [mutant names or globs]
    (--fresh: forget earlier results; --survivors: try again, with the tests as they are now, only
    the mutants not killed so far)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "build" / "mutation"
SHARED_DATA = REPO.parent / "shared" / "data"

# staged path under src/ -> the repository's file or package
SOURCES = {
    "src/pancscan": "layers/runtime/pancscan",
    "src/pancscan_local": "infra/pancscan_local",
    "src/pancscan_client": "client/pancscan_client",
    "src/pancscan_cli": "cli/pancscan_cli",
    "src/pancscan_function_api.py": "functions/api/app.py",
}
MUTATED = [f"src/pancscan/{name}.py" for name in (
    "reading/archive", "reading/dicom", "reading/nifti", "reading/imaging", "reading/scan_input",
    "detection/model", "detection/ood", "detection/predict", "detection/series",
    "service/scans", "service/aws", "service/inference", "service/settings", "service/research",
    "outputs/fhir", "outputs/slice_sheets")] + [
    "src/pancscan_function_api.py",  # the API's handler
    "src/pancscan_local/auth.py",  # the JWT authorizer (issuer.py is the token endpoint)
    *(f"src/pancscan_client/{name}.py" for name in ("gateway", "deidentify", "structured_report", "secondary_capture"))]
ALSO_COPIED = ["events", "site", "template.yaml", "model/pancscan.json", "model/pancscan.tflite"]
# in-process tests only: the e2e tests run the installed code in other processes; the model tests and
# the image, marker, template and import-contract tests need artefacts, tools and the repository's folders that are
# not staged (and are not about these modules)
TESTS = ["tests/unit", "tests/integration", "--ignore=tests/integration/test_inference_image.py",
         "--ignore=tests/unit/test_markers.py", "--ignore=tests/unit/test_template.py",
         "--ignore=tests/unit/test_import_contracts.py", "-p", "no:randomly", "-p", "no:cacheprovider"]
DETECTED = ("killed", "timeout")  # a mutant that makes a test hang past its time limit is detected too
EQUIVALENT = REPO / "mutation" / "equivalent.txt"
REPORT = REPO / "mutation" / "report.md"

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}


def stage(fresh: bool) -> None:
    """The staged copy: sources, tests and what they read, refreshed from the repository. mutmut keeps
    its results in mutants/ and tries again only the functions whose source changed (it compares
    modification times, which the copies keep), unless ``fresh``."""
    if fresh and STAGE.exists():
        shutil.rmtree(STAGE)
    mutants = STAGE / "mutants"
    for staged, source in SOURCES.items():
        copy(REPO / source, STAGE / staged)
    for path in ALSO_COPIED + ["tests"]:
        copy(REPO / path, STAGE / path)
        copy(REPO / path, mutants / path)  # mutmut copies these once; later runs need them afresh
    # the functions as the Lambda loader finds them (REPO/functions/<name>/app.py, REPO being mutants/
    # there): the API's is the mutated module itself
    api = mutants / "functions" / "api" / "app.py"
    if not api.is_symlink():
        api.parent.mkdir(parents=True, exist_ok=True)
        api.symlink_to("../../src/pancscan_function_api.py")
    copy(REPO / "functions" / "inference", mutants / "functions" / "inference")
    (STAGE / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text() + "\n[tool.mutmut]\n" + "\n".join([
        'source_paths = ["src"]',
        f"only_mutate = {json.dumps(MUTATED)}",
        f"also_copy = {json.dumps(ALSO_COPIED)}",
        f"pytest_add_cli_args_test_selection = {json.dumps(TESTS)}",
    ]) + "\n")


def copy(source: Path, target: Path) -> None:
    """``source`` in place of ``target``, modification times kept."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
    else:
        shutil.copy2(source, target)


def results() -> dict[str, str]:
    """Each mutant's status, from mutmut's own records (mutants/<file>.meta)."""
    statuses = {}
    for staged in MUTATED:
        meta = STAGE / "mutants" / (staged + ".meta")
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            statuses[name] = STATUS.get(code, "suspicious")
    return statuses


def equivalents() -> dict[str, str]:
    """mutation/equivalent.txt: `<mutant name>  <why it cannot be told apart>` per line."""
    listed = {}
    for line in EQUIVALENT.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, reason = line.partition(" ")
            listed[name] = reason.strip()
    return listed


def diff(name: str) -> str:
    shown = subprocess.run([mutmut(), "show", name], cwd=STAGE, capture_output=True, text=True)
    return "\n".join(line for line in shown.stdout.splitlines() if line.startswith(("-", "+")) and not line.startswith(("---", "+++")))


def mutmut() -> str:
    return str(Path(sys.executable).parent / "mutmut")


def repository_path(staged: str) -> str:
    """src/pancscan/reading/dicom.py -> layers/runtime/pancscan/reading/dicom.py"""
    for prefix, source in SOURCES.items():
        if staged == prefix or staged.startswith(prefix + "/"):
            return source + staged.removeprefix(prefix)
    return staged


def module_of(mutant: str) -> str:
    """pancscan.service.aws.xǁDynamoScanStoreǁfinish__mutmut_3 -> pancscan.service.aws"""
    return mutant.rsplit(".", 1)[0]


def report(statuses: dict[str, str], listed: dict[str, str]) -> tuple[str, float]:
    checked = {name: status for name, status in statuses.items() if status != "not checked"}
    survivors = sorted(name for name, status in checked.items() if status not in DETECTED)
    equivalent = [name for name in survivors if name in listed]
    unexplained = [name for name in survivors if name not in listed]
    stale = sorted(set(listed) - set(survivors))
    scored = len(checked) - len(equivalent)
    killed = sum(status in DETECTED for status in checked.values())
    score = killed / scored if scored else 0.0
    lines = ["# Mutation testing", "",
             "`make mutate` (mutmut over the unit and integration tests; `mutation/run.py`).", "",
             f"- mutants: {len(statuses)}, of which checked: {len(checked)}; killed (a test failed or hung): {killed}; "
             f"listed as equivalent: {len(equivalent)}; "
             f"surviving and not explained: {len(unexplained)}",
             f"- **mutation score: {killed}/{scored} = {score:.1%}** of the mutants that are not equivalent", "",
             "Each mutant keeps its result until its function's source changes (then it is tried again); "
             "`--survivors` tries again, with the tests as they are, the mutants not killed; `--fresh` starts over. "
             "mutmut leaves decorated functions alone: the API's routes and error handlers only hand the request "
             "to plain functions (mutated), and `health` returns a constant.", "",
             "| module | mutants | killed | equivalent | surviving, not explained | score |",
             "| --- | --- | --- | --- | --- | --- |"]
    for staged in MUTATED:
        module = staged.removeprefix("src/").removesuffix(".py").replace("/", ".")
        mine = {name: status for name, status in checked.items() if module_of(name) == module}
        mine_equivalent = sum(name in mine for name in equivalent)
        mine_killed = sum(status in DETECTED for status in mine.values())
        mine_scored = len(mine) - mine_equivalent
        mine_score = f"{mine_killed / mine_scored:.1%}" if mine_scored else "-"
        lines.append(f"| `{repository_path(staged)}` | {len(mine)} | {mine_killed} | {mine_equivalent} | "
                     f"{mine_scored - mine_killed} | {mine_score} |")
    by_status: dict[str, int] = {}
    for status in statuses.values():
        by_status[status] = by_status.get(status, 0) + 1
    lines += ["", "| status | mutants |", "| --- | --- |"] + [f"| {s} | {n} |" for s, n in sorted(by_status.items())] + [""]
    if unexplained:
        lines += ["## Surviving, not explained", ""]
        for name in unexplained:
            lines += [f"### `{name}` ({statuses[name]})", "", "```diff", diff(name), "```", ""]
    if equivalent:
        lines += ["## Equivalent (mutation/equivalent.txt)", "", "| mutant | why no test can tell it apart |", "| --- | --- |"]
        lines += [f"| `{name}` | {listed[name]} |" for name in equivalent] + [""]
    if stale:
        lines += ["## Listed as equivalent but killed or gone (remove from mutation/equivalent.txt)", ""]
        lines += [f"- `{name}`" for name in stale] + [""]
    return "\n".join(lines), score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--fresh", action="store_true", help="forget earlier results (build/mutation) and start over")
    parser.add_argument("--survivors", action="store_true", help="try again only the mutants not killed so far (after adding tests)")
    parser.add_argument("mutants", nargs="*", help="only these mutants (names or globs), e.g. 'pancscan.reading.archive.*'")
    args = parser.parse_args()
    stage(args.fresh)
    mutants = args.mutants
    if args.survivors and not mutants:
        mutants = sorted(name for name, status in results().items() if status not in (*DETECTED, "not checked"))
    env = os.environ | {"PANCSCAN_MODEL": str(REPO / "model" / "pancscan.tflite"),
                        "PANCSCAN_DATA": str(SHARED_DATA / "nih-pancreas-ct-slices"),
                        "PANCSCAN_MSD_DATA": str(SHARED_DATA / "msd-pancreas-tumour-ct-slices")}
    run = subprocess.run([mutmut(), "run", "--max-children", str(args.jobs), *mutants], cwd=STAGE, env=env)
    if run.returncode != 0:
        return run.returncode
    text, score = report(results(), equivalents())
    REPORT.write_text(text)
    print(text.split("\n## ")[0])
    print(f"report: {REPORT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
