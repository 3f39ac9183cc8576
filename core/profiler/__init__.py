"""The profiler: pre-aggregated system metrics, step statistics, operators and rule findings of a job.

Job-side, ``analysers/profiler_sidecar.py`` reads what the training script recorded and
stores documents through :class:`ProfilerStore`; the app reads them with :func:`load_profile`.
Nothing here imports smdebug or torch (the rules and aggregations are numpy), and plotly
figures live in :mod:`core.profiler.charts`, which only the app imports.
"""

from core.profiler._store import ProfilerStore
from core.profiler.entities import Finding, RuleStatus
from core.profiler.views import ProfileView, load_profile, no_data_message

__all__ = ["Finding", "ProfileView", "ProfilerStore", "RuleStatus", "load_profile", "no_data_message"]
