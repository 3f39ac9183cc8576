"""The Data page with AppTest: the demo end to end, and bad inputs shown as errors."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from core.backend import Backend
from tests.contracts.test_datasets_contract import BAD, GOOD, dataset_with_bad_files
from tests.pages.conftest import open_page


def test_demo_is_checked_uploaded_and_listed(local_backend: Backend) -> None:
    at = open_page("data")
    assert any("No dataset yet" in i.value for i in at.info)
    at.radio(key="data_source").set_value("Bundled demo").run()
    at.button(key="data_check").click().run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Images"] == "1797"
    assert {m.label: m.value for m in at.metric}["Classes"] == "10"
    assert not at.error
    assert at.text_input(key="data_name").value == "digits-demo"
    at.button(key="data_upload").click().run()
    assert not at.exception
    assert any("Dataset digits-demo is ready at file://" in s.value for s in at.success)
    # the sidebar is drawn before the page: it names the next step after the upload, not before it
    assert [link.proto.label for link in at.sidebar.get("page_link")] == ["Next: Tune or train a model"]
    [record] = local_backend.store.list_datasets()
    assert record.report["total_images"] == 1797
    assert len(local_backend.storage.list("datasets/digits-demo/")) == 1797 + 1  # and excluded.json, empty
    assert not any((local_backend.settings.workspace / "staging").iterdir())  # staged copy discarded


def test_folder_with_missing_split_shows_errors_and_no_upload(local_backend: Backend, tmp_path: Path) -> None:
    at = open_page("data")
    at.radio(key="data_source").set_value("Folder on this machine").run()
    folder = tmp_path / "ds"
    for cls in ("a", "b"):
        (folder / "train" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(folder / "train" / cls / "1.jpg")
    (folder / "train" / "a" / "notes.txt").write_text("not an image")
    at.text_input(key="data_folder").input(str(folder)).run()
    at.button(key="data_check").click().run()
    assert not at.exception
    assert any("valid" in e.value for e in at.error)
    assert {m.label: m.value for m in at.metric}["Left out"] == "1"
    assert not [b for b in at.button if b.key == "data_upload"]


def test_unreachable_url_is_a_clear_error(local_backend: Backend) -> None:
    at = open_page("data")
    at.radio(key="data_source").set_value("From a URL").run()
    at.text_input(key="data_url").input("http://127.0.0.1:9/data.zip").run()
    at.button(key="data_check").click().run()
    assert not at.exception
    assert any("could not reach" in e.value for e in at.error)
    assert local_backend.store.list_datasets() == []


def test_a_checked_dataset_survives_a_reload_and_can_be_resumed_or_discarded(local_backend: Backend,
                                                                              tmp_path: Path) -> None:
    folder = tmp_path / "shapes"
    for split in ("train", "valid", "test"):
        for cls in ("a", "b"):
            (folder / split / cls).mkdir(parents=True)
            Image.new("RGB", (8, 8), (200 if cls == "a" else 0, 0, 0)).save(folder / split / cls / "1.jpg")
    at = open_page("data")
    at.radio(key="data_source").set_value("Folder on this machine").run()
    at.text_input(key="data_folder").input(str(folder)).run()
    at.button(key="data_check").click().run()
    assert {m.label: m.value for m in at.metric}["Images"] == "6"

    reloaded = open_page("data")  # a new session, as after a reload: the check is offered back
    assert not reloaded.exception
    assert any("Checked earlier, not uploaded yet: **shapes** (folder: " in i.value for i in reloaded.info)
    assert not reloaded.metric
    next(b for b in reloaded.button if b.label == "Resume").click().run()
    assert {m.label: m.value for m in reloaded.metric}["Images"] == "6"
    reloaded.button(key="data_upload").click().run()
    assert [d.name for d in local_backend.store.list_datasets()] == ["shapes"]
    assert [d.source for d in local_backend.store.list_datasets()] == [f"folder: {folder}"]
    assert not any((local_backend.settings.workspace / "staging").iterdir())  # uploaded: the staged copy is gone

    at.button(key="data_check").click().run()  # checked again in the first session, then discarded elsewhere
    other = open_page("data")
    next(b for b in other.button if b.label == "Discard").click().run()
    assert not any("Checked earlier" in i.value for i in other.info)
    assert not any((local_backend.settings.workspace / "staging").iterdir())


def test_bad_files_are_counted_listed_and_left_out_of_the_upload(local_backend: Backend, tmp_path: Path) -> None:
    folder = dataset_with_bad_files(tmp_path / "dogs")
    at = open_page("data")
    at.radio(key="data_source").set_value("Folder on this machine").run()
    at.text_input(key="data_folder").input(str(folder)).run()
    at.button(key="data_check").click().run()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Left out"] == str(len(BAD))
    assert any(f"{len(BAD)} file(s) left out" in m.value for m in at.markdown)
    [left_out] = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert sorted(left_out["file"]) == sorted(BAD)
    at.button(key="data_upload").click().run()
    assert not at.exception
    stored = {o.key.removeprefix("datasets/dogs/") for o in local_backend.storage.list("datasets/dogs/")}
    assert stored == {*GOOD, "excluded.json"}
    [catalog] = [d.value for d in at.dataframe if "left out" in d.value.columns]
    assert catalog["left out"].tolist() == [len(BAD)]


def test_an_s3_prefix_on_the_local_backend_is_refused_in_words(local_backend: Backend) -> None:
    at = open_page("data")
    at.radio(key="data_source").set_value("S3 prefix (in place)").run()
    at.text_input(key="data_s3").input("s3://my-bucket/dogs/").run()
    at.button(key="data_check").click().run()
    assert not at.exception
    assert any("the local backend reads no data in place" in e.value for e in at.error)
    assert local_backend.store.list_datasets() == []
