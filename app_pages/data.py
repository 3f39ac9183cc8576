"""Data: bring a dataset (zip, URL, folder, S3 prefix or the bundled demo), check it, and upload or register it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.express as px
import streamlit as st

from app_pages._shared import backend, journey, journey_checklist, rerun_after_change, show_error
from app_pages._zip_drop import zip_drop
from core.catalog import check_dataset, check_in_place, list_datasets, register_dataset, register_in_place
from core.datasets import (
    EXCLUDED_MANIFEST,
    BadFile,
    DatasetReport,
    DemoSource,
    FolderSource,
    PreparedDataset,
    UrlSource,
    ZipUpload,
    sample_images,
    staged_datasets,
    suggest_dataset_name,
    upload_plan,
)
from core.datasets.in_place import InPlaceDataset
from core.entities import DatasetRecord
from core.progress import TimeLeft, run_with_progress
from core.uploads import UploadSpool

st.title("Data")
st.caption(
    "An ImageFolder dataset: `train/`, `valid/` and `test/`, each with one folder per class "
    "holding its images. Drop a zip, give a URL or a folder, register an S3 prefix where it lies, or use the "
    "bundled demo (scikit-learn's digits)."
)
be = backend()
datasets = list_datasets(be)
with st.expander("Getting started", expanded=not datasets, icon=":material/flag:"):
    journey_checklist(journey())


def _forget_prepared() -> None:
    prepared: PreparedDataset | None = st.session_state.pop("prepared", None)
    if prepared is not None:
        prepared.discard()


def _ready(record: DatasetRecord) -> None:
    st.session_state["data_message"] = f"Dataset {record.name} is ready at {record.uri}"
    rerun_after_change()


staging = be.settings.workspace / "staging"
spool = UploadSpool(be.settings.workspace)
if "prepared" not in st.session_state:  # a reload or a new tab: offer the checks not uploaded yet
    for earlier in staged_datasets(staging)[:3]:
        c1, c2, c3 = st.columns([4, 1, 1], vertical_alignment="center")
        c1.info(f"Checked earlier, not uploaded yet: **{earlier.name_suggestion}** ({earlier.source}, "
                f"{earlier.report.total_images} images)", icon=":material/history:")
        if c2.button("Resume", key=f"data_resume_{earlier.folder.name}"):
            st.session_state["prepared"] = earlier
            st.rerun()
        if c3.button("Discard", key=f"data_discard_{earlier.folder.name}"):
            earlier.discard()
            st.rerun()

source_kind = st.radio(
    "Source", ["Upload a zip", "From a URL", "Folder on this machine", "S3 prefix (in place)", "Bundled demo"],
    horizontal=True, key="data_source",
)
source = None
prefix_uri = ""
received = None
if source_kind == "Upload a zip":
    received = zip_drop(key="data_zip")
    spooled = spool.finished(received["id"]) if received and spool.exists(received["id"]) else None
    if spooled is not None:
        source = ZipUpload(filename=spooled.filename, data=spooled.path)
elif source_kind == "From a URL":
    url = st.text_input("URL of a zip (http or https)", key="data_url", placeholder="https://…/dogImages.zip")
    if url:
        source = UrlSource(url=url.strip())
elif source_kind == "Folder on this machine":
    folder = st.text_input("Folder holding train/ valid/ test/", key="data_folder")
    if folder:
        source = FolderSource(path=Path(folder.strip()).expanduser())
elif source_kind == "S3 prefix (in place)":
    st.caption("An ImageFolder already in S3 is checked where it lies (its listing and a sample of its images) "
               "and registered without copying: training jobs read it from there.")
    prefix_uri = st.text_input("S3 prefix holding train/ valid/ test/", key="data_s3",
                               placeholder="s3://my-bucket/datasets/dogImages/").strip()
else:
    st.write("1,797 real handwritten digits from scikit-learn, 10 classes, rendered as 64 px JPEGs.")
    source = DemoSource()

in_place = source_kind == "S3 prefix (in place)"
if st.button("Check dataset", type="primary", disabled=not (prefix_uri or source), key="data_check"):
    _forget_prepared()
    st.session_state.pop("in_place", None)
    bar = st.progress(0.0, text="Starting…")
    stage_clocks: dict[str, TimeLeft] = {}

    def show_check(stage: str, fraction: float) -> None:
        clock = stage_clocks.setdefault(stage, TimeLeft())
        bar.progress(min(fraction, 1.0), text=f"{stage.capitalize()}: {clock.text(fraction)}")

    try:
        if in_place:
            st.session_state["in_place"] = check_in_place(be, prefix_uri, progress=show_check)
        else:
            st.session_state["prepared"] = check_dataset(source, staging, progress=show_check)
    except Exception as exc:
        show_error(exc)
    finally:
        bar.empty()
        if isinstance(source, ZipUpload) and received:
            spool.discard(received["id"])  # extracted into the staged copy, or refused: the zip is not needed


def show_report(report: DatasetReport, excluded: list[BadFile], left_out_help: str) -> None:
    """The validation report: counts, problems, charts and the files left out."""
    st.subheader("Validation report")
    split_totals = report.split_totals
    cols = st.columns(3 + len(split_totals))
    cols[0].metric("Classes", len(report.classes))
    cols[1].metric("Images", report.total_images)
    cols[2].metric("Left out", len(excluded), help=left_out_help)
    for col, (split, total) in zip(cols[3:], split_totals.items()):
        col.metric(split, total)
    for error in report.errors:
        st.error(error)
    for warning in report.warnings:
        st.warning(warning)
    if report.counts:
        rows = [(split, cls, n) for split, per_class in report.counts.items() for cls, n in per_class.items()]
        counts = pd.DataFrame(rows, columns=["split", "class", "images"])
        st.plotly_chart(
            px.bar(counts, x="class", y="images", color="split", barmode="group", title="Images per class and split"),
            key="data_counts_chart",
        )
    if report.image_sizes.sizes:
        sizes = pd.DataFrame(report.image_sizes.sizes, columns=["width", "height"])
        st.plotly_chart(
            px.scatter(sizes, x="width", y="height", title="Image sizes (width × height, pixels)"),
            key="data_sizes_chart",
        )
    if excluded:
        st.markdown(f"**{len(excluded):,} file(s) left out** (training never sees them)")
        st.dataframe(pd.DataFrame(excluded, columns=["file", "reason"]), hide_index=True, key="data_bad")


prepared: PreparedDataset | None = st.session_state.get("prepared")
checked: InPlaceDataset | None = st.session_state.get("in_place")
if prepared is not None:
    report = prepared.report
    _, excluded = upload_plan(prepared.root, report.bad_files)
    show_report(report, excluded, f"Files the upload leaves behind, listed with the dataset in {EXCLUDED_MANIFEST}")
    samples = sample_images(prepared.root, per_class=1, limit=12, exclude={bad.path for bad in excluded})
    if samples:
        st.markdown("**Samples**")
        grid = st.columns(min(len(samples), 6))
        for i, (cls, path) in enumerate(samples):
            grid[i % len(grid)].image(str(path), caption=cls, width=96)

    if report.is_usable:
        name = st.text_input("Dataset name", value=prepared.name_suggestion, key="data_name")
        target = be.storage.uri(f"datasets/{name or '…'}")
        if st.button(f"Upload to {target}", key="data_upload"):
            bar = st.progress(0.0, text="Uploading…")
            upload_clock = TimeLeft()

            def show_progress(done: int, total: int) -> None:
                fraction = done / total if total else 1.0
                bar.progress(fraction, text=f"Uploading… {done / 1e6:.1f} / {total / 1e6:.1f} MB, "
                                            f"{upload_clock.text(fraction)}")

            try:
                # S3 reports progress from its transfer threads, and a widget may only be touched from this
                # script thread: the upload runs in a worker and its progress is handed over to this thread.
                record = run_with_progress(
                    lambda progress: register_dataset(be, prepared.root, name=name, source=prepared.source or "upload",
                                                      report=report.to_dict(), progress=progress),
                    show_progress,
                    name=f"upload of dataset {name!r}",
                )
                _forget_prepared()
            except Exception as exc:
                show_error(exc)
            else:
                _ready(record)
            finally:
                bar.empty()
elif checked is not None:
    st.caption(f"{checked.uri}: {checked.report.total_images + len(checked.report.bad_files):,} images listed, "
               f"{checked.total_bytes / 1e6:,.1f} MB, {checked.sampled:,} of them read")
    show_report(checked.report, list(checked.report.bad_files),
                "Unreadable files found in the sample; the training script skips them")
    if checked.report.is_usable:
        name = st.text_input("Dataset name", value=suggest_dataset_name(checked.uri), key="data_name")
        if st.button(f"Register {checked.uri} (no copy)", key="data_register"):
            try:
                record = register_in_place(be, checked, name=name)
                st.session_state.pop("in_place", None)
            except Exception as exc:
                show_error(exc)
            else:
                _ready(record)

message = st.session_state.pop("data_message", None)
if message:
    st.success(message)
st.subheader("Datasets")
datasets = list_datasets(be)
if not datasets:
    st.info("No dataset yet: check one above and upload it.")
else:
    table = pd.DataFrame(
        [
            {
                "name": d.name,
                "images": d.report.get("total_images"),
                "classes": len(d.report.get("classes", [])),  # type: ignore[arg-type]
                "left out": len(d.report.get("excluded", d.report.get("bad_files", []))),  # type: ignore[arg-type]
                "uri": d.uri,
                "source": d.source,
                "created": pd.Timestamp(d.created_at, unit="s").strftime("%Y-%m-%d %H:%M"),
            }
            for d in datasets
        ]
    )
    st.dataframe(table, hide_index=True, key="data_table")
    c1, c2 = st.columns(2)
    c1.page_link("app_pages/tuning.py", label="Tune hyperparameters on a dataset →", icon=":material/tune:")
    c2.page_link("app_pages/training.py", label="Train a model on a dataset →", icon=":material/model_training:")
