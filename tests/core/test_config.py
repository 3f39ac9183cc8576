"""Settings from the file and the environment, and the errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.backend import get_backend
from core.config import Settings, load_settings, with_overrides
from core.errors import ConfigError
from core.types import BackendKind


def test_defaults_are_local_and_offline(tmp_path: Path) -> None:
    settings = load_settings(environ={}, settings_file=tmp_path / "missing.toml")
    assert settings.backend is BackendKind.LOCAL
    assert settings.database_path == settings.workspace / "console.db"


def test_environment_overrides_file(tmp_path: Path) -> None:
    file = tmp_path / "settings.toml"
    file.write_text('backend = "aws"\nregion = "eu-west-1"\nbucket = "my-bucket"\nworkspace = "/tmp/a"\n')
    settings = load_settings(environ={"SMC_WORKSPACE": str(tmp_path / "ws"), "SMC_REGION": "us-east-2"},
                             settings_file=file)
    assert settings.backend is BackendKind.AWS
    assert settings.region == "us-east-2"
    assert settings.bucket == "my-bucket"
    assert settings.workspace == tmp_path / "ws"


def test_analysis_poll_comes_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(environ={"SMC_ANALYSIS_POLL_S": "1.5"}, settings_file=tmp_path / "none.toml")
    assert settings.analysis_poll_s == 1.5


def test_the_local_jobs_cpus_come_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings(environ={"SMC_JOB_CPUS": "1"}, settings_file=tmp_path / "none.toml")
    assert settings.job_cpus == 1
    assert get_backend(with_overrides(settings, workspace=tmp_path)).runner.cpus == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"backend": "gcp"}, "backend: 'gcp' is not one of local, aws"),
        ({"region": "mars-1"}, "region"),
        ({"bucket": "Bad_Bucket"}, "bucket"),
        ({"role_arn": "admin"}, "role_arn"),
        ({"prefix": "../up"}, "prefix"),
        ({"analysis_poll_s": "often"}, "analysis_poll_s: 'often' is not a number of seconds"),
        ({"analysis_poll_s": "0"}, "analysis_poll_s: must be above 0"),
        ({"job_cpus": "many"}, "job_cpus: 'many' is not a number of CPUs"),
        ({"job_cpus": "0"}, "job_cpus: must be at least 1"),
    ],
)
def test_invalid_values_name_the_field(values: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings(**values)  # type: ignore[arg-type]


def test_the_aws_backend_needs_a_region_and_a_bucket(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs region and bucket"):
        get_backend(Settings(backend=BackendKind.AWS, workspace=tmp_path, region="us-east-1"))


def test_bad_file_and_unknown_key(tmp_path: Path) -> None:
    file = tmp_path / "settings.toml"
    file.write_text("backend = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(environ={}, settings_file=file)
    file.write_text('secret_key = "x"\n')
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(environ={}, settings_file=file)


def test_spot_ami_must_be_an_ami_id() -> None:
    assert Settings(spot_ami="ami-0123456789abcdef0").spot_ami == "ami-0123456789abcdef0"
    assert load_settings({"SMC_SPOT_AMI": "ami-12345678"}, settings_file=Path("/nonexistent.toml")).spot_ami == "ami-12345678"
    with pytest.raises(ConfigError, match="spot_ami: 'Deep Learning AMI' is not an AMI id"):
        Settings(spot_ami="Deep Learning AMI")
