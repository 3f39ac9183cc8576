"""The EC2 side of spot runs with moto (and botocore's Stubber for the exact request shape):
price history, the launch request, IAM documents, user data, status, console, terminate."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from core.aws import AwsSession
from core.config import Settings, with_overrides
from core.errors import InvalidInputError, NotFoundError
from core.jobstore import JobStore
from core.spot import SpotRunSpec, SpotRunStatus
from core.spot._aws import Ec2SpotManager, find_ami, find_dlami, market_options
from core.spot.iam import RUN_TAG, instance_policy, trust_policy
from core.spot.pricing import PricePoint, fetch_price_history, latest_prices, synthetic_reasons, time_weighted_mean
from core.spot.userdata import MAX_USER_DATA_BYTES, UserDataInputs, render_user_data
from tests.core.aws_fixtures import (  # noqa: F401  (fixtures)
    BUCKET,
    PREFIX,
    REGION,
    aws_credentials_fixture,
    aws_fixture,
    aws_settings_fixture,
    no_network_fixture,
)

DATA_URI = f"s3://{BUCKET}/{PREFIX}/datasets/digits"
MOTO_DLAMI = "Deep Learning AMI Ubuntu Linux*"
MOTO_DLAMI_OWNER = ("898082745236",)  # the AWS account that publishes Deep Learning AMIs


@pytest.fixture
def manager(aws: AwsSession, aws_settings: Settings, tmp_path: Path) -> Ec2SpotManager:
    return Ec2SpotManager(aws_settings, aws, JobStore(tmp_path / "console.db"), ami_name=MOTO_DLAMI,
                          ami_owners=MOTO_DLAMI_OWNER)


def _spec(**changes: object) -> SpotRunSpec:
    values: dict[str, object] = dict(name="spot-aws", data_uri=DATA_URI, instance_type="g5.xlarge",
                                     hyperparameters={"epochs": 3, "seed": 7, "num-workers": 0}, max_price=0.5)
    values.update(changes)
    return SpotRunSpec(**values)  # type: ignore[arg-type]


# --- prices ------------------------------------------------------------------------------------


def test_moto_price_history_is_recognised_as_placeholders(aws: AwsSession) -> None:
    now = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)
    points = fetch_price_history(aws.client("ec2"), ["m5.xlarge", "g5.xlarge"], days=7, now=now)
    assert points and {p.instance_type for p in points} == {"m5.xlarge", "g5.xlarge"}
    assert {p.zone for p in points} >= {"us-east-1a", "us-east-1b"}
    reasons = synthetic_reasons(points, window_start=(now - dt.timedelta(days=7)).timestamp())
    assert any("below" in r for r in reasons) and any("2006" in r for r in reasons)


def test_real_looking_prices_are_not_flagged_and_are_summarised() -> None:
    t0 = dt.datetime(2026, 11, 20, tzinfo=dt.UTC).timestamp()
    points = [PricePoint("m5.xlarge", "us-east-1a", 0.071, t0), PricePoint("m5.xlarge", "us-east-1a", 0.083, t0 + 3600),
              PricePoint("m5.xlarge", "us-east-1b", 0.066, t0 + 60)]
    assert synthetic_reasons(points, window_start=t0 - 60) == []
    assert latest_prices(points)[("m5.xlarge", "us-east-1a")].price == 0.083
    means = time_weighted_mean(points, end=t0 + 7200)
    assert means[("m5.xlarge", "us-east-1a")] == pytest.approx((0.071 + 0.083) / 2)


def test_price_history_input_errors(aws: AwsSession) -> None:
    with pytest.raises(InvalidInputError, match="at least one instance type"):
        fetch_price_history(aws.client("ec2"), [])
    with pytest.raises(InvalidInputError, match="90 days"):
        fetch_price_history(aws.client("ec2"), ["m5.xlarge"], days=120)


# --- documents ---------------------------------------------------------------------------------


def test_iam_documents_are_limited_to_the_run() -> None:
    assert trust_policy()["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]
    policy = instance_policy(bucket=BUCKET, run_prefix=f"{PREFIX}/spot-runs/r1/", data_prefix=f"{PREFIX}/datasets/d",
                             run_name="r1")
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["ReadDataset"]["Action"] == "s3:GetObject"
    assert by_sid["ReadDataset"]["Resource"] == f"arn:aws:s3:::{BUCKET}/{PREFIX}/datasets/d/*"
    assert by_sid["ReadWriteRun"]["Resource"] == f"arn:aws:s3:::{BUCKET}/{PREFIX}/spot-runs/r1/*"
    assert by_sid["ListOwnPrefixes"]["Condition"]["StringLike"]["s3:prefix"] == [
        f"{PREFIX}/datasets/d/*", f"{PREFIX}/spot-runs/r1/*"]
    assert by_sid["EndOwnRequest"]["Condition"] == {"StringEquals": {f"aws:ResourceTag/{RUN_TAG}": "r1"}}
    s3_resources = [s["Resource"] for s in policy["Statement"] if str(s["Action"]).find("s3:") >= 0]
    assert all(r != "*" and not r.endswith(":::*") for r in s3_resources)
    assert {a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])} \
        == {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "ec2:CancelSpotInstanceRequests",
            "ec2:TerminateInstances", "ec2:DescribeInstances"}


def _inputs(**changes: object) -> UserDataInputs:
    values: dict[str, object] = dict(run_name="r1", region=REGION, code_uri=f"s3://{BUCKET}/p/code/sourcedir.tar.gz",
                                     data_uri=DATA_URI, checkpoint_uri=f"s3://{BUCKET}/p/checkpoints",
                                     output_uri=f"s3://{BUCKET}/p/output",
                                     hyperparameters={"epochs": "3", "note": "$(touch /tmp/pwned) 'x'"})
    values.update(changes)
    return UserDataInputs(**values)  # type: ignore[arg-type]


def test_user_data_renders_a_valid_script_with_quoted_values(tmp_path: Path) -> None:
    script = render_user_data(_inputs())
    assert script.startswith("#!/bin/bash\n") and len(script.encode()) < MAX_USER_DATA_BYTES
    (tmp_path / "user-data.sh").write_text(script)
    assert subprocess.run(["bash", "-n", str(tmp_path / "user-data.sh")], capture_output=True).returncode == 0
    run_sh = script.split("<<'SMC_RUN'\n", 1)[1].split("\nSMC_RUN\n", 1)[0]
    (tmp_path / "run.sh").write_text(run_sh)
    checked = subprocess.run(["bash", "-n", str(tmp_path / "run.sh")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "--note ''\"'\"'$(touch /tmp/pwned) '\"'\"'x'\"'\"''" not in run_sh  # single-quoted as a whole instead:
    assert "--note '$(touch /tmp/pwned) '\"'\"'x'\"'\"''" in run_sh
    for needed in (f"export AWS_DEFAULT_REGION={REGION}", f"--data-uri {DATA_URI}", "--epochs 3",
                   "cancel-spot-instance-requests", "terminate-instances", '"$CODE" -ne 143', "--notice-poll-s 5",
                   "pip install", "systemctl enable smc-spot.service", "X-aws-ec2-metadata-token"):
        assert needed in script, needed
    assert not re.search(r"AKIA|ASIA|aws_secret_access_key", script, re.I)


def test_user_data_refuses_unsafe_input() -> None:
    with pytest.raises(InvalidInputError, match="data_uri"):
        _inputs(data_uri="s3://bucket/x'; rm -rf /")
    with pytest.raises(InvalidInputError, match="region"):
        _inputs(region="us-east-1; id")
    with pytest.raises(InvalidInputError, match="line break"):
        _inputs(hyperparameters={"epochs": "1\nSMC_RUN"})
    with pytest.raises(InvalidInputError, match="16384"):
        render_user_data(_inputs(hyperparameters={f"k{i}": "x" * 200 for i in range(100)}))


# --- launch ------------------------------------------------------------------------------------


def test_launch_request_shape_matches_the_ec2_service_model(manager: Ec2SpotManager) -> None:
    spec = _spec(request_type="persistent", interruption_behavior="stop")
    request = manager.launch_request(spec, image_id="ami-12345678", profile_name="smc-spot-x",
                                     security_group_id="sg-12345678", user_data="#!/bin/bash\n")
    assert request["InstanceMarketOptions"] == {"MarketType": "spot", "SpotOptions": {
        "SpotInstanceType": "persistent", "InstanceInterruptionBehavior": "stop", "MaxPrice": "0.5000"}}
    assert request["MetadataOptions"]["HttpTokens"] == "required"  # IMDSv2 only
    assert "InstanceInitiatedShutdownBehavior" not in request
    client = boto3.client("ec2", region_name=REGION)
    with Stubber(client) as stub:
        stub.add_response("run_instances", {"Instances": [{"InstanceId": "i-0123456789abcdef0"}]}, request)
        client.run_instances(**request)  # botocore validates every parameter against the model
        stub.assert_no_pending_responses()
    one_time = market_options(_spec(request_type="one-time", max_price=None))
    assert one_time == {"MarketType": "spot", "SpotOptions": {"SpotInstanceType": "one-time",
                                                              "InstanceInterruptionBehavior": "terminate"}}


def test_a_root_volume_size_maps_the_amis_root_device(manager: Ec2SpotManager, aws: AwsSession) -> None:
    spec = _spec(volume_size_gb=200)
    request = manager.launch_request(spec, image_id="ami-12345678", profile_name="smc-spot-x",
                                     security_group_id="sg-12345678", user_data="#!/bin/bash\n",
                                     root_device="/dev/xvda")
    assert request["BlockDeviceMappings"] == [{"DeviceName": "/dev/xvda", "Ebs": {
        "VolumeSize": 200, "VolumeType": "gp3", "DeleteOnTermination": True}}]
    client = boto3.client("ec2", region_name=REGION)
    with Stubber(client) as stub:  # valid for EC2's model
        stub.add_response("run_instances", {"Instances": [{"InstanceId": "i-0123456789abcdef0"}]}, request)
        client.run_instances(**request)
    run = manager.launch(spec)  # on moto, with the DLAMI's own root device
    image = find_dlami(aws.client("ec2"), name_pattern=MOTO_DLAMI, owners=MOTO_DLAMI_OWNER)
    instance = aws.client("ec2").describe_instances(InstanceIds=list(run.resources["instance_ids"]))
    mapped = instance["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]
    assert [m["DeviceName"] for m in mapped] == [image["RootDeviceName"]]
    assert SpotRunSpec.from_dict(manager.describe(run.name).spec.to_dict()).volume_size_gb == 200
    assert "BlockDeviceMappings" not in manager.launch_request(_spec(), image_id="ami-1", profile_name="p",
                                                               security_group_id="sg-1", user_data="")


def test_the_instance_types_say_their_gpus(manager: Ec2SpotManager) -> None:
    labels = {t.name: t.label for t in manager.described_instance_types()}
    assert list(labels) == list(manager.instance_types)
    assert labels["g5.xlarge"] == "g5.xlarge · 4 vCPU, 16 GiB · 1 × A10G, 22.4 GiB each"
    assert labels["m5.xlarge"] == "m5.xlarge · 4 vCPU, 16 GiB"


def test_launch_creates_least_privilege_resources_and_a_spot_instance(manager: Ec2SpotManager, aws: AwsSession) -> None:
    run = manager.launch(_spec())
    assert run.status is SpotRunStatus.PENDING
    ec2, iam = aws.client("ec2"), aws.client("iam")
    instance_id = run.resources["instance_ids"][0]
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert instance["InstanceLifecycle"] == "spot"
    assert instance["ImageId"] == find_dlami(ec2, name_pattern=MOTO_DLAMI, owners=MOTO_DLAMI_OWNER)["ImageId"]
    assert instance["IamInstanceProfile"]["Arn"].endswith("/smc-spot-spot-aws")
    assert {"Key": RUN_TAG, "Value": "spot-aws"} in instance["Tags"]
    group = ec2.describe_security_groups(GroupIds=[run.resources["security_group_id"]])["SecurityGroups"][0]
    assert group["IpPermissions"] == []  # no inbound rule at all
    policy = iam.get_role_policy(RoleName="smc-spot-spot-aws", PolicyName="run-access")["PolicyDocument"]
    assert policy == instance_policy(bucket=BUCKET, run_prefix=f"{PREFIX}/spot-runs/spot-aws",
                                     data_prefix=f"{PREFIX}/datasets/digits", run_name="spot-aws")
    trust = iam.get_role(RoleName="smc-spot-spot-aws")["Role"]["AssumeRolePolicyDocument"]
    assert trust == trust_policy()
    user_data = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    script = base64.b64decode(user_data).decode()
    assert f"--data-uri {DATA_URI}" in script and "--epochs 3" in script
    code = aws.client("s3").head_object(Bucket=BUCKET, Key=f"{PREFIX}/spot-runs/spot-aws/code/sourcedir.tar.gz")
    assert code["ContentLength"] > 0
    assert [e.kind for e in manager.events(run.name)] == ["launch"]


def test_status_console_completion_terminate_and_cleanup(manager: Ec2SpotManager, aws: AwsSession) -> None:
    run = manager.launch(_spec())
    assert manager.describe(run.name).status is SpotRunStatus.RUNNING
    assert isinstance(manager.log_tail(run.name), list)
    s3 = aws.client("s3")
    out = f"{PREFIX}/spot-runs/spot-aws/output"
    s3.put_object(Bucket=BUCKET, Key=f"{out}/model.tar.gz", Body=b"model")
    s3.put_object(Bucket=BUCKET, Key=f"{out}/data/metrics.json", Body=json.dumps({"test_acc": 0.97, "valid_acc": 0.96}))
    t = time.time()
    events = [{"time": t + 1, "kind": "start", "instance": "i-1", "step": 0},
              {"time": t + 2, "kind": "notice", "instance": "i-1", "action": "stop"},
              {"time": t + 3, "kind": "resume", "instance": "i-1", "step": 4}]
    s3.put_object(Bucket=BUCKET, Key=f"{out}/data/spot-events.jsonl", Body="\n".join(map(json.dumps, events)))
    done = manager.describe(run.name)
    assert done.status is SpotRunStatus.COMPLETED
    assert done.model_uri == f"s3://{BUCKET}/{out}/model.tar.gz"
    assert done.final_metrics == {"test:accuracy": 0.97, "validation:accuracy": 0.96}
    assert [e.kind for e in manager.events(run.name)][-3:] == ["start", "notice", "resume"]
    manager.terminate(run.name)
    state = aws.client("ec2").describe_instances(InstanceIds=done.resources["instance_ids"])
    assert state["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"
    deleted = manager.cleanup(run.name)
    assert deleted == [done.resources["security_group_id"], "smc-spot-spot-aws", "smc-spot-spot-aws"]
    assert not {"role", "profile", "security_group_id"} & set(manager.describe(run.name).resources)
    assert aws.client("iam").list_instance_profiles()["InstanceProfiles"] == []


def test_launch_input_errors(manager: Ec2SpotManager) -> None:
    with pytest.raises(InvalidInputError, match=f"s3://{BUCKET}/"):
        manager.launch(_spec(data_uri="s3://someone-elses-bucket/data"))
    with pytest.raises(InvalidInputError, match="EC2 instance type"):
        manager.launch(_spec(name="spot-local", instance_type="local"))
    with pytest.raises(InvalidInputError, match="persistent request only with stop or hibernate"):
        _spec(request_type="persistent", interruption_behavior="terminate")
    with pytest.raises(InvalidInputError, match="volume_size_gb: an EBS gp3 volume holds 1 to 16384 GB, got 0"):
        _spec(volume_size_gb=0)


def test_a_missing_ami_is_a_clear_error(aws: AwsSession) -> None:
    with pytest.raises(NotFoundError, match="no AMI named like"):
        find_dlami(aws.client("ec2"), name_pattern="No Such AMI *", owners=MOTO_DLAMI_OWNER)


def test_the_spot_ami_setting_chooses_the_instances_image(aws: AwsSession, aws_settings: Settings,
                                                          tmp_path: Path) -> None:
    ec2 = aws.client("ec2")
    own = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]  # any AMI but a Deep Learning one
    manager = Ec2SpotManager(with_overrides(aws_settings, spot_ami=own), aws, JobStore(tmp_path / "console.db"),
                             ami_name="No Such AMI *", ami_owners=MOTO_DLAMI_OWNER)  # the name is not looked up

    run = manager.launch(_spec())

    instance = ec2.describe_instances(InstanceIds=run.resources["instance_ids"])["Reservations"][0]["Instances"][0]
    assert instance["ImageId"] == own
    manager.terminate(run.name)
    manager.cleanup(run.name)


def test_an_unknown_spot_ami_is_a_clear_error_and_leaves_nothing(aws: AwsSession, aws_settings: Settings,
                                                                 tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"AMI ami-0123456789abcdef0 \(the spot_ami setting\)"):
        find_ami(aws.client("ec2"), "ami-0123456789abcdef0")
    manager = Ec2SpotManager(with_overrides(aws_settings, spot_ami="ami-0123456789abcdef0"), aws,
                             JobStore(tmp_path / "console.db"))

    with pytest.raises(NotFoundError, match="the spot_ami setting"):
        manager.launch(_spec())

    run = manager.describe("spot-aws")
    assert run.status is SpotRunStatus.FAILED and "spot_ami" in (run.failure_reason or "")
    assert aws.client("s3").list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/spot-runs/")["KeyCount"] == 0
    assert aws.client("iam").list_instance_profiles()["InstanceProfiles"] == []
    assert aws.client("ec2").describe_instances()["Reservations"] == []


def test_a_run_that_evaluates_its_rules_may_put_events_on_its_bus_only(manager: Ec2SpotManager,
                                                                       aws: AwsSession) -> None:
    run = manager.launch(_spec(hyperparameters={"epochs": 3, "debug-event-bus": "default",
                                                "debug-rules-in-job": "true"}))
    policy = aws.client("iam").get_role_policy(RoleName="smc-spot-spot-aws", PolicyName="run-access")["PolicyDocument"]
    account = aws.client("sts").get_caller_identity()["Account"]
    assert policy["Statement"][-1] == {"Sid": "PutRuleEvents", "Effect": "Allow", "Action": "events:PutEvents",
                                       "Resource": f"arn:aws:events:{REGION}:{account}:event-bus/default"}
    user_data = aws.client("ec2").describe_instance_attribute(InstanceId=run.resources["instance_ids"][0],
                                                              Attribute="userData")["UserData"]["Value"]
    script = base64.b64decode(user_data).decode()
    assert "export TRAINING_JOB_NAME=spot-aws" in script  # the name its fired-rule events carry
    assert "--debug-rules-in-job true" in script
