"""The Debugger page against the real local backend, with debugger rows in the job store."""

from __future__ import annotations

import time

from streamlit.testing.v1 import AppTest

from core.analysis import AnalysisNotes
from core.backend import Backend
from core.debugger import DebugStore, RuleResult, RuleStatus, SeriesRow, TrialState
from core.entities import TrainingJob
from core.types import JobStatus
from entrypoints.rule_events import fired_entry
from tests.pages.conftest import APP, open_page

LOSS = "CrossEntropyLoss_output_0"


def _job(backend: Backend, name: str, status: JobStatus = JobStatus.COMPLETED, offset: float = 0.0) -> None:
    backend.store.insert_job(TrainingJob(name=name, status=status, backend="local", created_at=time.time() + offset))


def _debug_data(store: DebugStore, name: str) -> None:
    store.set_trial(name, path=f"/jobs/{name}/debug-output", state=TrialState.COMPLETE, steps=40, last_step=39)
    points = [SeriesRow(LOSS, "losses", "TRAIN", s, s, {"value": 2.3 - 0.05 * s}) for s in range(30)]
    points += [SeriesRow(LOSS, "losses", "EVAL", 30 + i, i, {"value": 0.9}) for i in range(5)]
    stats = {"mean": 0.0, "std": 0.1, "min": -0.3, "max": 0.3, "abs_mean": 0.05, "zero_fraction": 0.0}
    for layer, position in (("Net_conv.weight", 0), ("Net_fc.weight", 1)):
        store.add_tensors(name, {layer: ("weights", position), f"gradient/{layer}": ("gradients", position)})
        for step in (0, 10, 20):
            points.append(SeriesRow(layer, "weights", "TRAIN", step, step, {**stats, "l2": 1.0 + step}))
            points.append(SeriesRow(f"gradient/{layer}", "gradients", "TRAIN", step, step,
                                    {k: v / 100 for k, v in {**stats, "l2": 1.0 + step}.items()}))
    store.add_series(name, points)
    now = time.time()
    store.init_rules(name, [
        RuleResult(name, "VanishingGradient", RuleStatus.NO_ISSUES_FOUND, now, message="no issue in 3 evaluations"),
        RuleResult(name, "LossNotDecreasing", RuleStatus.ISSUES_FOUND, now, stop_training=True, step=10,
                   tensor=LOSS, message="the mean training loss over 10 steps rose by 5%",
                   meaning="The loss is not going down.", advice="Check the learning rate."),
        RuleResult(name, "DeadRelu", RuleStatus.ERROR, now, message="no data for this rule: start the job with "
                   "--debug-activations true", meaning="dead units", advice="lower the learning rate"),
    ])
    store.notify(name, "warning", "LossNotDecreasing found an issue at step 10", rule="LossNotDecreasing",
                 action="StopTraining")
    store.notify(name, "info", "Stopping the job: LossNotDecreasing fired and its action is StopTraining",
                 rule="LossNotDecreasing", action="StopTraining")


def test_no_job_points_to_the_training_page(local_backend: Backend) -> None:
    at = open_page("debugger")
    assert not at.exception
    assert any("No training job yet" in i.value for i in at.info)


def test_rules_findings_notifications_and_charts(local_backend: Backend) -> None:
    _job(local_backend, "debug-job")
    _debug_data(DebugStore(local_backend.store), "debug-job")
    at = open_page("debugger")
    assert not at.exception, at.exception
    assert at.selectbox(key="debug_job").value == "debug-job"
    assert {m.label: m.value for m in at.metric} == {"Job status": "Completed", "Steps read": "40",
                                                    "Evaluator": "Complete"}
    table = at.dataframe[0].value
    assert list(table["rule"]) == ["LossNotDecreasing", "DeadRelu", "VanishingGradient"]
    assert list(table["status"]) == ["IssuesFound", "Error", "NoIssuesFound"]
    assert table.iloc[0]["action"] == "StopTraining" and table.iloc[0]["step"] == 10
    texts = " ".join(e.label for e in at.expander)
    assert "LossNotDecreasing: IssuesFound" in texts and "DeadRelu: Error" in texts and "Notifications (2)" in texts
    markdown = " ".join(m.value for m in at.markdown)
    assert "Check the learning rate." in markdown and "--debug-activations true" in markdown
    assert any("Stopping the job" in i.value for i in at.info)
    assert any("LossNotDecreasing found an issue" in w.value for w in at.warning)
    assert len(at.tabs) == 3
    assert at.selectbox(key="debug_layer_weights").options == ["conv.weight", "fc.weight"]
    at.radio(key="debug_grad_reduction").set_value("abs_mean").run()
    assert not at.exception
    at.radio(key="debug_collection").set_value("gradients").run()
    assert not at.exception
    assert at.selectbox(key="debug_layer_gradients").options == ["conv.weight", "fc.weight"]


def test_missing_debug_folder_is_explained(local_backend: Backend) -> None:
    _job(local_backend, "plain-job")
    DebugStore(local_backend.store).set_trial(
        "plain-job", path="/jobs/plain-job/debug-output", state=TrialState.MISSING,
        message="no debug folder: the job ended without writing /jobs/plain-job/debug-output")
    at = open_page("debugger")
    assert not at.exception
    assert any("no debug folder" in w.value for w in at.warning)
    assert not at.tabs


def test_a_job_without_any_debugger_record(local_backend: Backend) -> None:
    _job(local_backend, "old-job")
    at = open_page("debugger")
    assert not at.exception
    assert any("No debugger data for this job" in i.value for i in at.info)
    assert any("No rule configured" in c.value for c in at.caption)


def test_running_job_is_followed_live(local_backend: Backend) -> None:
    _job(local_backend, "live-job", JobStatus.IN_PROGRESS)
    store = DebugStore(local_backend.store)
    store.set_trial("live-job", path="/jobs/live-job/debug-output", state=TrialState.WAITING)
    at = open_page("debugger")
    assert not at.exception
    assert any("Waiting for the job's first saved step" in i.value for i in at.info)
    assert {m.label: m.value for m in at.metric}["Job status"] == "InProgress"
    _debug_data(store, "live-job")
    at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Steps read"] == "40"


def test_selection_follows_the_training_page(local_backend: Backend) -> None:
    _job(local_backend, "first-job")
    _job(local_backend, "second-job", offset=1.0)
    at = open_page("debugger")
    assert at.selectbox(key="debug_job").value == "second-job"
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["selected_job"] = "first-job"  # the job picked on the Training jobs page
    at.run()
    at.switch_page("app_pages/debugger.py").run()
    assert not at.exception
    assert at.selectbox(key="debug_job").value == "first-job"


def test_a_link_with_a_job_parameter_opens_that_job_once(local_backend: Backend) -> None:
    _job(local_backend, "older-job")
    _job(local_backend, "newer-job", offset=10.0)  # listed first: the default choice
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.query_params["job"] = "older-job"
    at.switch_page("app_pages/debugger.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="debug_job").value == "older-job"
    assert "job" not in at.query_params  # read once: the user's own choice sticks afterwards
    at.selectbox(key="debug_job").select("newer-job").run()
    assert at.selectbox(key="debug_job").value == "newer-job"


def test_an_ended_job_whose_evaluator_still_reads_is_followed(local_backend: Backend, analysis_says) -> None:
    """A SageMaker job analysed after it ended: the page says the trial is being read and keeps refreshing."""
    analysis_says(AnalysisNotes(debugger="Rules are evaluated on this machine.", debugger_reading=True))
    _job(local_backend, "ended-job")
    at = open_page("debugger")
    assert not at.exception, at.exception
    assert any("reading the job's trial" in i.value for i in at.info)
    assert not any("No debugger data" in i.value for i in at.info)
    assert at.session_state["debug_job"] == "ended-job"


def test_rule_actions_are_deployed_from_the_page_and_a_fired_rule_shows_its_outcome(local_backend: Backend) -> None:
    _job(local_backend, "debug-job", JobStatus.STOPPED)
    store = DebugStore(local_backend.store)
    _debug_data(store, "debug-job")
    at = open_page("debugger")
    assert any(e.label == "Rule actions: not deployed" for e in at.expander)
    at.text_input(key="rule_actions_topic").set_value("rule-alerts")
    at.checkbox(key="rule_actions_allow").set_value(False)
    next(b for b in at.button if b.label == "Deploy rule actions").click().run()
    assert not at.exception, at.exception
    assert any("Rule actions deployed" in s.value for s in at.success)
    statements = " ".join(m.value for m in at.markdown)
    assert "**(no stop)**" in statements and "**PublishToOneTopic**" in statements
    # the rule fired on a job that has ended: the function is denied the stop (no permission) and notifies
    entry = fired_entry(job="debug-job", rule="LossNotDecreasing", step=10, tensor=LOSS, finding="the loss rose",
                        stop_training=True)
    event_id = local_backend.rule_actions.put_event(entry)
    store.add_event("debug-job", "LossNotDecreasing", "default", entry, sent_at=time.time(), event_id=event_id)
    at = open_page("debugger")
    assert not at.exception, at.exception
    fired = next(d.value for d in at.dataframe if "outcome" in d.value.columns)
    assert fired[["rule", "event id", "action", "outcome"]].values.tolist() == [
        ["LossNotDecreasing", event_id, "StopTrainingJob", "denied"],
        ["LossNotDecreasing", event_id, "Publish", "notified"]]
    assert any("StopTrainingJob → **denied**" in m.value for m in at.markdown)
    assert any(e.label == f"Event {event_id} (LossNotDecreasing)" for e in at.expander)
