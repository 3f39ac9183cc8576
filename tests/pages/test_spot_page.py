"""The EC2 Spot page (local backend): cost figures from entered prices, bad input, a launch
through the real simulator, and a finished run's timeline, lost work and comparison."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.backend import Backend, get_backend
from core.config import load_settings
from core.entities import DatasetRecord
from core.spot import SpotEvent, SpotRun, SpotRunSpec, SpotRunStatus
from core.spot.store import SpotStore
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures register on import)
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
)
from tests.pages.conftest import open_page

HPS = {"model": "efficientnet_lite0", "epochs": "2", "seed": "42"}


def _dataset(backend: Backend, tmp_path: Path) -> DatasetRecord:
    folder = tmp_path / "ds"
    (folder / "train" / "a").mkdir(parents=True)
    record = DatasetRecord("digits", folder.as_uri(), "demo", time.time(), {"total_images": 3, "classes": ["a"]})
    backend.store.put_dataset(record)
    return record


def _completed(store: SpotStore, name: str, data_uri: str, accuracy: float, *, interrupted: bool) -> None:
    t = time.time() - 100
    spec = SpotRunSpec(name=name, data_uri=data_uri, hyperparameters=HPS, spot_price_per_h=0.3,
                       on_demand_price_per_h=1.0)
    store.insert_run(SpotRun(name=name, backend="local", status=SpotRunStatus.PENDING, spec=spec, created_at=t))
    events = [("launch", "i-a", {}), ("start", "i-a", {"step": 0})]
    if interrupted:
        events += [("notice", "i-a", {"action": "stop"}), ("checkpoint", "i-a", {"step": 17, "reason": "notice"}),
                   ("interrupted", "i-a", {"notice_at": t + 20, "progress_step": 17, "checkpoint_step": 17,
                                           "lost_steps": 0, "steps_per_epoch": 40, "alive_at_kill": False,
                                           "checkpoint_after_notice_s": 1.5}),
                   ("relaunch", "", {}), ("launch", "i-a", {}), ("resume", "i-a", {"step": 17})]
    events += [("completed", "i-a", {})]
    for offset, (kind, instance, detail) in enumerate(events):
        store.add_event(SpotEvent(name, t + 10 * offset, kind, instance, detail))
    store.update_run(name, status=SpotRunStatus.COMPLETED, ended_at=t + 90, detail="Completed",
                     model_uri=f"file:///models/{name}/model.tar.gz", final_metrics={"test:accuracy": accuracy})


def test_empty_workspace_and_cost_from_entered_prices(local_backend: Backend) -> None:
    at = open_page("spot")
    assert not at.exception
    assert any("no price feed" in c.value for c in at.caption)
    assert any("Ingest a dataset on the Data page first" in i.value for i in at.info)
    assert any("No spot run yet" in i.value for i in at.info)
    at.number_input(key="spot_price").set_value(0.3)
    at.number_input(key="spot_on_demand").set_value(1.0)
    at.number_input(key="spot_hours").set_value(2.0).run()
    values = {m.label: m.value for m in at.metric}
    assert values["Spot"] == "$0.60" and values["On-demand"] == "$2.00" and values["Saving"] == "70%"
    assert "Spot price (USD/h, entered)" in [n.label for n in at.number_input]


def test_bad_schedule_gets_a_clear_error(local_backend: Backend, tmp_path: Path) -> None:
    _dataset(local_backend, tmp_path)
    at = open_page("spot")
    at.text_input(key="spot_schedule").input("20, soon")
    at.button(key="spot_launch").click().run()
    assert not at.exception
    assert any("interruptions: 'soon' is not a number of seconds" in e.value for e in at.error)
    assert any("Shortened notice: 10 s instead of EC2's two minutes" in c.value for c in at.caption)


def test_launch_starts_the_simulator(local_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _dataset(local_backend, tmp_path)
    # /bin/echo stands in for the job interpreter: the "instance" prints its arguments and exits 0.
    monkeypatch.setenv("SMC_JOB_PYTHON", "/bin/echo")
    at = open_page("spot")
    at.text_input(key="spot_name").input("page-spot")
    at.button(key="spot_launch").click().run()
    assert not at.exception
    assert any("Launched page-spot" in s.value for s in at.success)

    manager = get_backend(load_settings()).spot
    run = manager.wait("page-spot", timeout_s=120, poll_s=0.2)  # type: ignore[attr-defined]
    assert run.status is SpotRunStatus.FAILED
    assert run.failure_reason == "the training script exited 0 but wrote no model.tar.gz"
    assert run.spec.hyperparameters_as_strings["num-workers"] == "0" and run.spec.interruption_behavior == "stop"
    at.run()
    assert not at.exception
    assert any(e.value == run.failure_reason for e in at.error)
    (log,) = [c.value for c in at.code]
    assert "--metadata-url http://127.0.0.1:" in log and "ec2_train.py" in log  # echo printed its command line


def test_finished_run_shows_lost_work_comparison_and_deploy(local_backend: Backend, tmp_path: Path) -> None:
    uri = _dataset(local_backend, tmp_path).uri
    store = SpotStore(local_backend.store)
    _completed(store, "spot-reference", uri, 0.9600, interrupted=False)
    _completed(store, "spot-interrupted", uri, 0.9600, interrupted=True)
    at = open_page("spot")
    assert not at.exception
    assert at.selectbox(key="spot_selected").value == "spot-interrupted"
    values = {m.label: m.value for m in at.metric}
    assert values["Status"] == "Completed" and values["Interruptions"] == "1"
    assert values["Max lost work (epochs)"] == "0.00" and values["Test accuracy"] == "0.9600"
    lost = at.dataframe[1].value
    assert lost[["checkpoint step", "lost steps", "resumed at step"]].values.tolist() == [[17, 0, 17]]
    assert any("uninterrupted run spot-reference with the same seed and settings: +0.00 points" in s.value
               for s in at.success)
    assert any("prices entered by the user" in c.value for c in at.caption)

    deploy = open_page("deploy")
    assert not deploy.exception
    labels = deploy.selectbox(key="deploy_job").options
    assert any("spot-interrupted" in label for label in labels)


def test_aws_backend_charts_prices_and_says_moto_prices_are_synthetic(
    aws: object, aws_settings: object, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Inside moto: the price chart, the placeholder warning, and a launch whose AMI lookup fails clearly."""
    from tests.core.aws_fixtures import BUCKET, PREFIX, REGION

    monkeypatch.setenv("SMC_BACKEND", "aws")
    monkeypatch.setenv("SMC_REGION", REGION)
    monkeypatch.setenv("SMC_BUCKET", BUCKET)
    monkeypatch.setenv("SMC_WORKSPACE", str(tmp_path / "ws"))
    backend = get_backend(load_settings())
    backend.store.put_dataset(DatasetRecord("digits", f"s3://{BUCKET}/{PREFIX}/datasets/digits", "demo", time.time()))
    at = open_page("spot")
    assert not at.exception
    assert any("look synthetic" in w.value and "below $0.0005/hour" in w.value for w in at.warning)
    assert len(at.get("plotly_chart")) == 1
    latest = at.dataframe[0].value
    assert set(latest["instance type"]) == {"g5.xlarge", "g4dn.xlarge"}
    types = at.selectbox(key="spot_instance_type")
    assert types.value == "g5.xlarge" and "g5.xlarge · 4 vCPU, 16 GiB · 1 × A10G, 22.4 GiB each" in types.options
    assert not at.number_input(key="spot_volume").disabled
    assert at.selectbox(key="spot_behaviour").options == ["stop", "hibernate"]
    at.button(key="spot_launch").click().run()
    assert not at.exception
    assert any("no AMI named like 'Deep Learning OSS Nvidia Driver AMI GPU PyTorch" in e.value for e in at.error)
