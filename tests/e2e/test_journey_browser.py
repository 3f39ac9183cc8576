"""Issue 9: the newcomer's whole journey in a real browser, from an empty workspace, following
the links each page offers: drop the demo zip, tune (2 trials, 1 epoch each), open the best
trial's Debugger and Profiler views, deploy it, drop test images, call the endpoint through the
Lambda function (then see the same call denied without the permission), and train on a
simulated spot instance that is interrupted once and resumes. A screenshot of every page is
saved under test-artifacts/journey-*.png."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e import waits
from tests.e2e.conftest import choose_image_size, choose_option, click_when_idle, screenshot
from tests.e2e.elements import charts, metric_value, sidebar
from tests.e2e.test_data_and_training_browser import drop_files, ingest_demo_by_drop, upload_checked_dataset
from tests.e2e.test_spot_browser import stop_spot_runs  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow]
DIGITS = (0, 2, 4, 6, 8)
JOB_TIMEOUT_MS = 900_000


def sidebar_next(page: Page, title: str) -> None:
    waits.visible(sidebar(page).get_by_role("link", name=f"Next: {title}"))


def tune_two_one_epoch_trials(page: Page) -> str:
    """Launches 2 trials of 1 epoch from the Tuning form; returns the best trial's job name."""
    waits.heading(page, "Tuning")
    form = page.locator('[data-testid="stForm"]')
    form.get_by_label("Tuning job name (empty: generated)").fill("journey-tune")
    selectboxes = form.locator('[data-testid="stSelectbox"]')
    epochs_range = selectboxes.nth(7)  # Dataset, then name, type and scaling of each range row
    waits.value(epochs_range.get_by_role("combobox"), "epochs")
    choose_option(page, epochs_range, "— (unused)")
    form.get_by_label("Min").first.fill("0.001")  # the learning rate's range: every trial learns in one epoch
    form.get_by_label("Max trials").fill("2")
    form.get_by_label("Epochs", exact=True).fill("1")
    choose_image_size(page, form, 32)
    form.get_by_role("button", name="Launch tuning job").click()
    waits.visible(page.get_by_text("Started journey-tune: 2 trials, 2 at a time"))
    waits.text(metric_value(page, "Running"), "2", timeout=180_000)
    waits.metric(page, "Status", "Completed", timeout=JOB_TIMEOUT_MS)
    waits.text(metric_value(page, "Trials done"), "2 / 2")
    # The live view redraws in place: its copy from when one trial was done (naming that one as the
    # best) can outlast the redraw of the counters above it. A reload draws the ended job once.
    page.reload()
    waits.heading(page, "Tuning")
    waits.metric(page, "Status", "Completed")
    best = page.get_by_text(re.compile(r"^Training job journey-tune-[\w-]+ \(trial \d\)"))
    waits.count(best, 1)
    name = re.match(r"Training job (\S+)", best.inner_text()).group(1)  # type: ignore[union-attr]
    waits.visible(page.get_by_role("link", name=f"Debugger view of {name}"))
    screenshot(page, "journey-03-tuning")
    return name


def predict_demo_digits(page: Page, test_split: Path) -> Path:
    """Drops one test image per digit of DIGITS (from test_split) on the endpoint; returns one it got right."""
    waits.visible(page.get_by_text("Drop one or more images"), timeout=300_000)  # InService
    images = [sorted((test_split / str(digit)).glob("*.jpg"))[0] for digit in DIGITS]
    drop_files(page, *images)
    top1 = metric_value(page, "Top-1")
    waits.count(top1, len(DIGITS))
    predicted = [top1.nth(i).inner_text().strip() for i in range(len(DIGITS))]
    right = [image for image, label, digit in zip(images, predicted, DIGITS, strict=True) if label == str(digit)]
    assert len(right) >= 3, predicted  # most: one epoch of 32 px digits is a rough model
    assert all(metric_value(page, "Latency").nth(i).inner_text().endswith(" ms") for i in range(len(DIGITS)))
    screenshot(page, "journey-06-deploy")
    return right[0]


def evaluate_the_test_split(page: Page, dataset: str, images: int) -> None:
    """Issue 15: the endpoint answers every image of a registered dataset's test split; accuracy, top-5,
    latency and a confusion matrix are shown."""
    page.get_by_text("Evaluate on labelled images").scroll_into_view_if_needed()
    choose_option(page, page.locator('[data-testid="stSelectbox"]').filter(has_text="Dataset"), dataset)
    confusion = page.get_by_text(re.compile(r"^Confusion matrix"))
    running = page.get_by_text(re.compile(r"^(Preparing the images|Asking )"))  # the progress bar's text
    click_when_idle(page, page.get_by_role("button", name="Evaluate", exact=True), confusion.or_(running))
    waits.visible(confusion, timeout=300_000)

    def metric(label: str) -> str:
        return page.locator('[data-testid="stMetric"]').filter(has=page.get_by_text(label, exact=True)).locator(
            '[data-testid="stMetricValue"]').inner_text()

    assert metric("Images") == f"{images:,}"
    assert metric("Accuracy").endswith("%") and metric("Top-5 accuracy").endswith("%")
    assert metric("Latency p95").endswith(" ms")
    waits.visible(charts(page).last)
    screenshot(page, "journey-06b-evaluation")


def invoke_lambda_allowed_then_denied(page: Page, endpoint: str, image: Path, *, account: str = "000000000000",
                                      region: str = "us-east-1") -> None:
    """Deploys the function for endpoint, invokes it with image (200, the endpoint's answer), then
    takes its InvokeEndpoint permission away and sees the same call denied (403) by the role's policy."""
    waits.heading(page, "Lambda")
    function = f"classify-{endpoint}"
    page.get_by_role("button", name="Deploy function").click()
    waits.visible(page.get_by_text(f"Deployed {function} ("))
    drop_files(page, image)
    waits.value(page.get_by_label("Event (JSON): image as base64, or s3_uri, or url"),
                re.compile(r'"image": "/9j/'))  # the JPEG's base64
    page.get_by_role("button", name="Invoke", exact=True).click()
    waits.text(metric_value(page, "Status"), "200")
    waits.text(metric_value(page, "Top-1"), image.parent.name)  # the endpoint's own right answer
    screenshot(page, "journey-07-lambda")

    page.locator('[data-testid="stCheckbox"]').filter(has_text="InvokeEndpoint on the endpoint").locator(
        "label").click()
    waits.visible(page.get_by_text("denied (implicitDeny)"))
    page.get_by_role("button", name="Invoke", exact=True).click()
    waits.text(metric_value(page, "Status"), "403")
    waits.visible(page.get_by_text(re.compile(
        rf"403 AccessDenied: User: arn:aws:sts::{account}:assumed-role/{function}-role/{function} "
        r"is not authorized to perform: sagemaker:InvokeEndpoint on resource: "
        rf"arn:aws:sagemaker:{region}:{account}:endpoint/{endpoint}")))
    waits.count(metric_value(page, "Top-1"), 0)


def spot_run_interrupted_once(page: Page) -> None:
    waits.heading(page, "EC2 Spot")
    # 32 px: two epochs take about 38 s on one quiet core, so the interruption at 20 s lands mid-run
    choose_image_size(page, page.locator("body"), 32)
    page.get_by_label("Interrupt after (s, one value per instance)").fill("20")
    page.get_by_label("Run name (empty: generated)").fill("journey-spot")
    page.get_by_label("Run name (empty: generated)").press("Enter")
    page.get_by_role("button", name="Launch", exact=True).click()
    waits.visible(page.get_by_text("Launched journey-spot"))
    log = page.locator('[data-testid="stCode"]')
    waits.metric(page, "Interruptions", "1", timeout=JOB_TIMEOUT_MS)
    waits.contains(log, "launched (attempt 2)", timeout=JOB_TIMEOUT_MS)
    waits.contains(log, re.compile(r"spot: (resumed|checkpoint epoch=1)"), timeout=JOB_TIMEOUT_MS)
    waits.metric(page, "Status", "Completed", timeout=JOB_TIMEOUT_MS)
    assert float(metric_value(page, "Max lost work (epochs)").inner_text()) <= 1.0
    assert float(metric_value(page, "Test accuracy").inner_text()) >= 0.8
    waits.visible(page.get_by_role("link", name="Deploy this model"))
    screenshot(page, "journey-08-spot")


def open_the_timeline_at_a_step(page: Page, step: int = 6) -> None:
    """The Steps tab's timeline of the job's torch.profiler window (steps 5 to 7 by default), zoomed
    to one step: its phase band and its CPU thread's lane are drawn."""
    page.get_by_role("tab", name="Steps").click()
    choose_option(page, page.locator('[data-testid="stSelectbox"]').filter(has_text="Open at"), f"step {step}")
    waits.visible(page.get_by_text(re.compile(r"^\d+ events drawn")).first)
    timeline = charts(page).filter(has_text="phases")
    waits.visible(timeline.first)
    waits.contains(timeline.first, "CPU thread")


@pytest.mark.timeout(1800)  # every stage trains or serves for real: about 6 minutes on 2 quiet cores
def test_the_whole_journey_from_an_empty_workspace(page: Page, app_url: str, tmp_path: Path,
                                                   stop_spot_runs: None) -> None:
    page.goto(app_url)
    waits.heading(page, "Data")
    waits.visible(page.get_by_role("link", name=re.compile(r"^1\. Bring a dataset")))
    sidebar_next(page, "Bring a dataset")
    screenshot(page, "journey-01-empty")

    ingest_demo_by_drop(page, app_url, tmp_path)
    upload_checked_dataset(page)
    screenshot(page, "journey-02-data")
    page.get_by_role("link", name=re.compile("Tune hyperparameters on a dataset")).click()
    best_job = tune_two_one_epoch_trials(page)

    page.get_by_role("link", name=f"Debugger view of {best_job}").click()
    waits.heading(page, "Debugger")
    waits.visible(page.get_by_text(re.compile(r"^\d+ rules: \d+ NoIssuesFound")).first)
    waits.chart(page)
    screenshot(page, "journey-04-debugger")

    page.get_by_role("link", name=f"Profiler view of {best_job}").click()
    waits.heading(page, "Profiler")
    waits.metric(page, "Analysis", "final")
    waits.chart(page)
    screenshot(page, "journey-05-profiler")
    open_the_timeline_at_a_step(page)
    screenshot(page, "journey-05b-timeline")

    page.get_by_role("link", name=f"Deploy the model of {best_job}").click()
    waits.heading(page, "Deploy")
    waits.visible(page.get_by_text(re.compile(rf"{best_job}/output/model\.tar\.gz")).first)
    endpoint = page.get_by_label("Endpoint name (empty: generated)").get_attribute("placeholder")
    assert endpoint
    page.get_by_role("button", name="Deploy", exact=True).click()
    test_split = tmp_path / "workspace" / "storage" / "datasets" / "digits-demo" / "test"
    image = predict_demo_digits(page, test_split)
    evaluate_the_test_split(page, "digits-demo", len(list(test_split.rglob("*.jpg"))))

    page.get_by_role("link", name=f"Next: call {endpoint} from a Lambda function").click()
    invoke_lambda_allowed_then_denied(page, endpoint, image)

    sidebar_next(page, "Train for less on EC2 Spot")
    sidebar(page).get_by_role("link", name="Next: Train for less on EC2 Spot").click()
    spot_run_interrupted_once(page)
    waits.count(sidebar(page).get_by_role("link", name=re.compile("^Next:")), 0)
