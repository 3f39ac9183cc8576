"""What is shipped to AWS imports nothing from outside what is shipped.

``sourcedir.tar.gz`` (``entrypoints/``, packed by ``pack_source_dir`` exactly as the aws backend
packs it for training jobs, tuning trials and spot instances) is unpacked into an empty folder
and every module in it is imported there by the job environment's interpreter, with only that
folder on the path and no repository path in the environment; the serving image's code (the
files ``docker/serving/Dockerfile`` copies; SageMaker endpoints get no code archive) likewise.
A module that needs ``core``, the analysers or a file left out of the archive fails to import,
and a module loaded from the repository instead of the archive is named.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from core.config import DEFAULT_JOB_PYTHON, ENTRYPOINTS_DIR, REPO_ROOT
from core.training import TrainingJobSpec
from core.training._sagemaker import pack_source_dir

DOCKERFILE = REPO_ROOT / "docker" / "serving" / "Dockerfile"
REPOSITORY_PACKAGES = {"analysers", "app_pages", "benchmarks", "core", "entrypoints", "lambda", "tests"}
ANALYSERS = {"debug_sidecar.py", "profiler_sidecar.py"}
"""The console's analysers; the rules (debug_rules.py) ship, as the job evaluates them itself (job_rules.py)."""
IMPORT_TIMEOUT_S = 300

# Imports each module named in argv[3:] from the folder argv[1]; prints which failed and which modules were
# loaded from the repository (argv[2]) rather than from the folder or the interpreter's own prefix.
_IMPORT_ALL = """
import importlib, json, os, sys, traceback
folder, repo, names = os.path.realpath(sys.argv[1]), sys.argv[2], sys.argv[3:]
failed = {}
for name in names:
    try:
        importlib.import_module(name)
    except BaseException:
        failed[name] = traceback.format_exc(limit=-3)
own = (folder + os.sep, os.path.realpath(sys.prefix) + os.sep, os.path.realpath(sys.base_prefix) + os.sep)
strays = sorted(
    f"{name}: {path}" for name, module in list(sys.modules.items())
    if (path := os.path.realpath(getattr(module, "__file__", None) or "/")).startswith(repo + os.sep)
    and not path.startswith(own)
)
print(json.dumps({"failed": failed, "strays": strays}))
"""


def _import_every_module(folder: Path) -> None:
    """Imports each ``*.py`` of ``folder`` there, in one job-environment interpreter, with nothing else on the path."""
    names = sorted(path.stem for path in folder.glob("*.py"))
    assert names, f"no module in {folder}"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder.parent), "PYTHONPATH": str(folder),
           "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run([str(DEFAULT_JOB_PYTHON), "-c", _IMPORT_ALL, str(folder), str(REPO_ROOT.resolve()), *names],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=IMPORT_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}, "\n".join(f"{name}:\n{trace}" for name, trace in report["failed"].items())
    assert report["strays"] == [], f"loaded from the repository, not from {folder}: {report['strays']}"


def _imported_packages(path: Path) -> set[str]:
    """Top-level names of every absolute import in the module, also those inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_the_training_code_archive_holds_what_it_imports_and_no_analyser(tmp_path: Path) -> None:
    source_dir = TrainingJobSpec(name="shipped", inputs={"training": "s3://bucket/data"}).source_dir
    assert source_dir == ENTRYPOINTS_DIR  # what the runners and the tuner pack unless told otherwise
    archive = pack_source_dir(source_dir, tmp_path / "sourcedir.tar.gz")
    with tarfile.open(archive) as tar:
        members = tar.getnames()
        assert {"train.py", "ec2_train.py", "job_rules.py", "debug_rules.py", "rule_events.py"} <= set(members)
        assert not ANALYSERS & {Path(name).name for name in members}, members  # they run beside the job, not in it
        assert not {name.split("/")[0] for name in members} & REPOSITORY_PACKAGES, members
        code = tmp_path / "code"
        code.mkdir()
        tar.extractall(code, filter="data")
    lazily_named = {path.name: sorted(_imported_packages(path) & REPOSITORY_PACKAGES) for path in code.glob("*.py")}
    assert {name: found for name, found in lazily_named.items() if found} == {}
    _import_every_module(code)


def _serving_image_files() -> list[str]:
    """The repository paths the serving image's Dockerfile copies into its code folder."""
    lines = DOCKERFILE.read_text().replace("\\\n", " ").splitlines()
    files = [token for line in lines if line.startswith("COPY ") for token in line.split()[1:]
             if token.startswith("entrypoints/")]
    assert files, f"no entrypoints/ file copied in {DOCKERFILE}"
    return files


def test_the_serving_image_code_holds_what_it_imports(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    for name in _serving_image_files():
        shutil.copy(REPO_ROOT / name, code / Path(name).name)
    assert (code / "serve.py").is_file() and (code / "inference.py").is_file()
    _import_every_module(code)
