"""Loading a standard-library-only module of ``entrypoints/`` into the app.

``entrypoints/`` is shipped to SageMaker as the job's source_dir and imports nothing from
``core``. Where the app needs the very rules a job-side module enforces (the Debugger's rule
names and parser, the IAM evaluator), it loads that file by path instead of keeping a copy
that could drift. Such modules import only the standard library at module level.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from core.config import ENTRYPOINTS_DIR


def load_entrypoint_module(stem: str) -> ModuleType:
    """``entrypoints/<stem>.py`` as a module (loaded once per process, as ``smc_<stem>``)."""
    name = f"smc_{stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ENTRYPOINTS_DIR / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
