"""Spot training runs on EC2: price history, launch with RunInstances, status, console, terminate.

``launch`` uploads the code, looks up a Deep Learning AMI, creates the run's IAM role and
instance profile (:mod:`core.spot.iam`) and a security group with no inbound rule, renders the
user data (:mod:`core.spot.userdata`) and calls ``run_instances`` with
``InstanceMarketOptions`` (``RequestSpotInstances`` is legacy). The run's S3 prefix is
``<prefix>/spot-runs/<name>/``: ``code/``, ``checkpoints/``, ``output/`` (``model.tar.gz``,
``data/metrics.json``, ``data/spot-events.jsonl``, ``logs/``). The run record lives in the console
database; its state is read back from EC2 and S3 on ``describe``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from core.aws import AwsSession, aws_errors
from core.config import ENTRYPOINTS_DIR, Settings
from core.errors import ConsoleError, InvalidInputError, NotFoundError
from core.jobstore import JobStore
from core.lambdas.policies import partition
from core.spot._base import SpotManager
from core.spot.entities import SpotEvent, SpotRun, SpotRunSpec, SpotRunStatus, event_detail
from core.spot.iam import RUN_TAG, instance_policy, trust_policy
from core.spot.pricing import PricePoint, fetch_price_history
from core.spot.store import SpotStore
from core.spot.userdata import UserDataInputs, render_user_data
from core.storage._s3 import S3Storage
from core.training._instance_catalog import ec2_instance_types
from core.training._sagemaker import pack_source_dir
from core.training.compute import InstanceType

DLAMI_NAME = "Deep Learning OSS Nvidia Driver AMI GPU PyTorch * (Ubuntu 22.04) *"
DLAMI_OWNERS = ("amazon",)
ROLE_PREFIX = "smc-spot-"
_TERMINAL_INSTANCE = ("shutting-down", "terminated")
_METRIC_NAMES = {"test_acc": "test:accuracy", "test_loss": "test:loss", "valid_acc": "validation:accuracy",
                 "valid_loss": "validation:loss"}
"""metrics.json keys -> the metric names of the training jobs' metric definitions."""
_REQUEST_NOTICE_CODES = ("marked-for-termination", "marked-for-stop", "marked-for-hibernation")
_REQUEST_WAITING_CODES = ("instance-stopped-by-price", "instance-stopped-no-capacity",
                          "instance-stopped-capacity-oversubscribed", "instance-stopped-by-experiment",
                          "instance-hibernated-by-price", "instance-hibernated-no-capacity", "pending-fulfillment",
                          "capacity-not-available", "price-too-low", "capacity-oversubscribed")


def find_dlami(ec2: Any, *, name_pattern: str = DLAMI_NAME, owners: tuple[str, ...] = DLAMI_OWNERS,
               architecture: str = "x86_64") -> dict[str, str]:
    """The newest available AMI whose name matches (a Deep Learning AMI by default).

    Raises:
        NotFoundError: none in this region.
    """
    with aws_errors("looking up the Deep Learning AMI"):
        images = ec2.describe_images(
            Owners=list(owners),
            Filters=[{"Name": "name", "Values": [name_pattern]}, {"Name": "state", "Values": ["available"]},
                     {"Name": "architecture", "Values": [architecture]}],
        )["Images"]
    if not images:
        raise NotFoundError(f"no AMI named like {name_pattern!r} (owners {', '.join(owners)}) in this region")
    newest = max(images, key=lambda image: image.get("CreationDate", ""))
    return _image(newest)


def _image(image: dict[str, Any]) -> dict[str, str]:
    """What a launch needs of an AMI: its id, its name, and the device its root volume is on."""
    return {"ImageId": image["ImageId"], "Name": image.get("Name", ""),
            "RootDeviceName": image.get("RootDeviceName", "/dev/sda1")}


def find_ami(ec2: Any, image_id: str) -> dict[str, str]:
    """The AMI of that id, if this region has it available.

    Raises:
        NotFoundError: no such available AMI in this region.
    """
    with aws_errors(f"looking up the AMI {image_id} (the spot_ami setting)"):
        images = ec2.describe_images(ImageIds=[image_id],
                                     Filters=[{"Name": "state", "Values": ["available"]}])["Images"]
    if not images:
        raise NotFoundError(f"looking up the AMI {image_id} (the spot_ami setting): not available in this region")
    return _image(images[0])


def market_options(spec: SpotRunSpec) -> dict[str, Any]:
    """RunInstances' ``InstanceMarketOptions`` for the spec."""
    options: dict[str, Any] = {"SpotInstanceType": spec.request_type,
                               "InstanceInterruptionBehavior": spec.interruption_behavior}
    if spec.max_price is not None:
        options["MaxPrice"] = f"{spec.max_price:.4f}"
    return {"MarketType": "spot", "SpotOptions": options}


def _tags(name: str, resource_type: str) -> dict[str, Any]:
    return {"ResourceType": resource_type,
            "Tags": [{"Key": RUN_TAG, "Value": name}, {"Key": "Name", "Value": f"smc-spot {name}"}]}


class Ec2SpotManager(SpotManager):
    """Spot runs on EC2 through boto3 clients of ``session``.

    Args:
        settings: region, bucket and prefix of the aws backend.
        session: the AWS session (clients are created on first use, so moto can wrap them).
        store: the console database, where run records and events are kept.
        ami_name, ami_owners: the AMI lookup (a Deep Learning AMI with PyTorch by default), used
            unless ``settings.spot_ami`` names the AMI.
    """

    backend_name = "aws"
    instance_types = ("g5.xlarge", "g4dn.xlarge", "g6.xlarge", "m5.xlarge", "c5.2xlarge", "p3.2xlarge")
    has_price_feed = True
    can_clean_up = True
    log_title = "Console output (newest instance)"
    has_volume_size = True

    def __init__(self, settings: Settings, session: AwsSession, store: JobStore, *,
                 ami_name: str = DLAMI_NAME, ami_owners: tuple[str, ...] = DLAMI_OWNERS) -> None:
        self.settings = settings
        self.session = session
        self.spot_store = SpotStore(store)
        self.ami_name = ami_name
        self.ami_owners = ami_owners
        self._described: list[InstanceType] | None = None

    @property
    def _ec2(self) -> Any:
        return self.session.client("ec2")

    @property
    def _iam(self) -> Any:
        return self.session.client("iam")

    @property
    def _s3(self) -> S3Storage:
        return S3Storage(self.session.client("s3"), self.settings.bucket or "", self.settings.prefix)

    def run_key(self, name: str, sub: str = "") -> str:
        return f"spot-runs/{name}/{sub}".rstrip("/")

    def described_instance_types(self) -> list[InstanceType]:
        """Asked of EC2 once (undescribed where EC2 refuses to say)."""
        if self._described is None:
            with aws_errors("describing the spot instance types"):
                self._described = ec2_instance_types(self._ec2, self.instance_types)
        return self._described

    def price_history(self, instance_types: list[str], *, days: float = 7) -> list[PricePoint]:
        """Spot prices for the chart (see :func:`core.spot.pricing.fetch_price_history`)."""
        return fetch_price_history(self._ec2, instance_types, days=days)

    # --- launch -----------------------------------------------------------------------------

    def launch_request(self, spec: SpotRunSpec, *, image_id: str, profile_name: str, security_group_id: str,
                       user_data: str, root_device: str = "/dev/sda1") -> dict[str, Any]:
        """The ``run_instances`` request of a run (public for tests and for the page's preview)."""
        request: dict[str, Any] = {
            "ImageId": image_id, "InstanceType": spec.instance_type, "MinCount": 1, "MaxCount": 1,
            "IamInstanceProfile": {"Name": profile_name}, "SecurityGroupIds": [security_group_id],
            "UserData": user_data, "InstanceMarketOptions": market_options(spec),
            "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
            "TagSpecifications": [_tags(spec.name, "instance"), _tags(spec.name, "volume"),
                                  _tags(spec.name, "spot-instances-request")],
        }
        if spec.request_type == "one-time":
            request["InstanceInitiatedShutdownBehavior"] = "terminate"
        if spec.volume_size_gb is not None:  # else the AMI's size
            request["BlockDeviceMappings"] = [{"DeviceName": root_device, "Ebs": {
                "VolumeSize": spec.volume_size_gb, "VolumeType": "gp3", "DeleteOnTermination": True}}]
        return request

    def launch(self, spec: SpotRunSpec) -> SpotRun:
        storage = self._s3
        data_prefix = self._data_prefix(spec.data_uri)
        if spec.instance_type == "local":
            raise InvalidInputError("instance_type: choose an EC2 instance type, such as g5.xlarge or m5.xlarge")
        run = SpotRun(name=spec.name, backend=self.backend_name, status=SpotRunStatus.PENDING, spec=spec,
                      created_at=time.time(), detail="Creating the role, security group and request")
        self.spot_store.insert_run(run)
        resources: dict[str, Any] = {}
        try:
            image = (find_ami(self._ec2, self.settings.spot_ami) if self.settings.spot_ami
                     else find_dlami(self._ec2, name_pattern=self.ami_name, owners=self.ami_owners))
            resources["image"] = image
            with tempfile.TemporaryDirectory(prefix="smc-spot-") as tmp:
                archive = pack_source_dir(ENTRYPOINTS_DIR, Path(tmp) / "sourcedir.tar.gz")
                storage.put_file(archive, self.run_key(spec.name, "code/sourcedir.tar.gz"))
            resources.update(self._create_profile(spec.name, data_prefix, self._event_bus_arn(spec)))
            resources["security_group_id"] = self._create_security_group(spec.name)
            user_data = render_user_data(UserDataInputs(
                run_name=spec.name, region=self.session.region,
                code_uri=storage.uri(self.run_key(spec.name, "code/sourcedir.tar.gz")), data_uri=spec.data_uri,
                checkpoint_uri=storage.uri(self.run_key(spec.name, "checkpoints")),
                output_uri=storage.uri(self.run_key(spec.name, "output")),
                hyperparameters=spec.hyperparameters_as_strings))
            request = self.launch_request(spec, image_id=image["ImageId"], profile_name=resources["profile"],
                                          security_group_id=resources["security_group_id"], user_data=user_data,
                                          root_device=image["RootDeviceName"])
            response = self._run_instances(request)
            instance = response["Instances"][0]
            resources.update(instance_ids=[instance["InstanceId"]],
                             spot_request_id=instance.get("SpotInstanceRequestId"))
        except BaseException as exc:
            self.spot_store.update_run(spec.name, status=SpotRunStatus.FAILED, ended_at=time.time(), detail="Failed",
                                       failure_reason=f"launch failed: {exc}", resources=resources)
            with contextlib.suppress(ConsoleError):
                self._delete_resources(resources)
            raise
        self.spot_store.update_run(spec.name, status=SpotRunStatus.PENDING, resources=resources,
                                   detail=f"Instance {resources['instance_ids'][0]} requested")
        self.spot_store.add_event(SpotEvent(spec.name, time.time(), "launch", resources["instance_ids"][0],
                                            {"image": image["ImageId"], "request": resources.get("spot_request_id")}))
        return self.spot_store.get_run(spec.name)

    def _run_instances(self, request: dict[str, Any]) -> dict[str, Any]:
        # IAM is eventually consistent: a new instance profile may not be usable for some seconds.
        for attempt in range(6):
            try:
                with aws_errors("launching the spot instance"):
                    return dict(self._ec2.run_instances(**request))
            except InvalidInputError as exc:
                if "instance profile" not in str(exc).lower() or attempt == 5:
                    raise
                time.sleep(2 * (attempt + 1))
        raise AssertionError("unreachable")

    def _data_prefix(self, data_uri: str) -> str:
        if not data_uri.startswith(f"s3://{self.settings.bucket}/"):
            raise InvalidInputError(f"the dataset must be in s3://{self.settings.bucket}/ (ingest it on the Data page)"
                                    f", not {data_uri!r}")
        return data_uri.removeprefix(f"s3://{self.settings.bucket}/").strip("/")

    def _event_bus_arn(self, spec: SpotRunSpec) -> str | None:
        """The bus the run's rules go to when it evaluates them itself (``debug-rules-in-job``), else None."""
        hps = spec.hyperparameters_as_strings
        if hps.get("debug-rules-in-job", "false").lower() != "true" or not hps.get("debug-event-bus"):
            return None
        with aws_errors("looking up the AWS account (sts:GetCallerIdentity)"):
            account = self.session.client("sts").get_caller_identity()["Account"]
        return f"arn:{partition(self.session.region)}:events:{self.session.region}:{account}:event-bus/" \
               f"{hps['debug-event-bus']}"

    def _create_profile(self, name: str, data_prefix: str, event_bus_arn: str | None = None) -> dict[str, Any]:
        role = profile = f"{ROLE_PREFIX}{name}"[:64]
        run_prefix = f"{self.settings.prefix.strip('/')}/{self.run_key(name)}".strip("/")
        with aws_errors(f"creating IAM role {role}"):
            self._iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust_policy()),
                                  Description=f"EC2 Spot training run {name} (sm-console)",
                                  Tags=[{"Key": RUN_TAG, "Value": name}])
            self._iam.put_role_policy(RoleName=role, PolicyName="run-access", PolicyDocument=json.dumps(
                instance_policy(bucket=self.settings.bucket or "", run_prefix=run_prefix, data_prefix=data_prefix,
                                run_name=name, event_bus_arn=event_bus_arn)))
            self._iam.create_instance_profile(InstanceProfileName=profile, Tags=[{"Key": RUN_TAG, "Value": name}])
            self._iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=role)
        return {"role": role, "profile": profile}

    def _create_security_group(self, name: str) -> str:
        with aws_errors("finding the default VPC"):
            vpcs = self._ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"]
        if not vpcs:
            raise NotFoundError("no default VPC in this region: create one (aws ec2 create-default-vpc)")
        with aws_errors("creating the security group"):
            group = self._ec2.create_security_group(
                GroupName=f"smc-spot-{name}", VpcId=vpcs[0]["VpcId"],
                Description=f"sm-console spot run {name}: no inbound rule",
                TagSpecifications=[_tags(name, "security-group")])
        return str(group["GroupId"])

    # --- observe ----------------------------------------------------------------------------

    def describe(self, name: str) -> SpotRun:
        run = self.spot_store.get_run(name)
        if run.backend != self.backend_name or run.status.is_terminal:
            return run
        self._refresh(run)
        return self.spot_store.get_run(name)

    def _instances(self, name: str) -> list[dict[str, Any]]:
        with aws_errors(f"describing the instances of {name}"):
            pages = self._ec2.get_paginator("describe_instances").paginate(
                Filters=[{"Name": f"tag:{RUN_TAG}", "Values": [name]}])
            return sorted((i for page in pages for r in page["Reservations"] for i in r["Instances"]),
                          key=lambda i: i["LaunchTime"])

    def _refresh(self, run: SpotRun) -> None:
        storage = self._s3
        if storage.exists(self.run_key(run.name, "output/model.tar.gz")):
            metrics: dict[str, float] = {}
            with contextlib.suppress(ConsoleError, ValueError):
                with tempfile.TemporaryDirectory() as tmp:
                    path = storage.get_file(self.run_key(run.name, "output/data/metrics.json"), Path(tmp) / "m.json")
                    data = json.loads(path.read_text())
                    metrics = {name: float(data[key]) for key, name in _METRIC_NAMES.items() if key in data}
            self._import_events(run.name)
            self.spot_store.update_run(run.name, status=SpotRunStatus.COMPLETED, ended_at=time.time(),
                                       detail="Completed", final_metrics=metrics,
                                       model_uri=storage.uri(self.run_key(run.name, "output/model.tar.gz")))
            return
        instances = self._instances(run.name)
        request = self._spot_request(run)
        code = (request or {}).get("Status", {}).get("Code", "")
        latest = instances[-1] if instances else None
        state = latest["State"]["Name"] if latest else "pending"
        ids = [i["InstanceId"] for i in instances]
        resources = {**run.resources, "instance_ids": ids or run.resources.get("instance_ids", [])}
        if code in _REQUEST_NOTICE_CODES:
            status, detail = SpotRunStatus.NOTICE, f"Interruption notice ({code})"
        elif code in _REQUEST_WAITING_CODES or state in ("stopping", "stopped"):
            status, detail = SpotRunStatus.WAITING, f"Waiting for capacity ({code or state})"
        elif state in _TERMINAL_INSTANCE and (request is None or request.get("State") in ("cancelled", "closed")):
            status, detail = (SpotRunStatus.INTERRUPTED if code.startswith("instance-terminated-by")
                              else SpotRunStatus.FAILED), f"Instance {state} ({code or 'no request'})"
        else:
            status, detail = (SpotRunStatus.RUNNING if state == "running" else SpotRunStatus.PENDING), \
                f"Instance {latest['InstanceId'] if latest else ''} {state}"
        changes: dict[str, Any] = {"status": status, "detail": detail, "resources": resources}
        if status.is_terminal:
            changes.update(ended_at=time.time(), failure_reason=detail)
        self.spot_store.update_run(run.name, **changes)
        self._import_events(run.name)

    def _spot_request(self, run: SpotRun) -> dict[str, Any] | None:
        request_id = run.resources.get("spot_request_id")
        if not request_id:
            return None
        with aws_errors(f"describing spot request {request_id}"):
            try:
                found = self._ec2.describe_spot_instance_requests(SpotInstanceRequestIds=[request_id])
            except Exception as exc:  # moto and new requests: InvalidSpotInstanceRequestID.NotFound
                if "NotFound" in type(exc).__name__ or "NotFound" in str(exc):
                    return None
                raise
        requests = found.get("SpotInstanceRequests", [])
        return dict(requests[0]) if requests else None

    def _import_events(self, name: str) -> None:
        """Adds the events the script uploaded (spot-events.jsonl) that the store lacks."""
        storage = self._s3
        key = self.run_key(name, "output/data/spot-events.jsonl")
        if not storage.exists(key):
            return
        with tempfile.TemporaryDirectory() as tmp:
            lines = storage.get_file(key, Path(tmp) / "events.jsonl").read_text().splitlines()
        known = {(round(e.time, 3), e.kind) for e in self.spot_store.events(name)}
        for line in lines:
            with contextlib.suppress(ValueError, KeyError):
                record = json.loads(line)
                if (round(record["time"], 3), record["kind"]) not in known:
                    self.spot_store.add_event(SpotEvent(name, float(record["time"]), str(record["kind"]),
                                                        str(record.get("instance", "")), event_detail(record)))

    def list_runs(self, *, limit: int = 100) -> list[SpotRun]:
        return self.spot_store.list_runs(backend=self.backend_name, limit=limit)

    def events(self, name: str) -> list[SpotEvent]:
        self.spot_store.get_run(name)
        return self.spot_store.events(name)

    def log_tail(self, name: str, max_lines: int = 200) -> list[str]:
        """The newest instance's console output (EC2 keeps the last 64 KB)."""
        ids = self.spot_store.get_run(name).resources.get("instance_ids") or []
        if not ids:
            return []
        with aws_errors(f"reading the console output of {ids[-1]}"):
            output = self._ec2.get_console_output(InstanceId=ids[-1], Latest=True).get("Output", "") or ""
        try:
            text = base64.b64decode(output, validate=True).decode(errors="replace")
        except ValueError:
            text = output
        return text.splitlines()[-max_lines:]

    # --- end --------------------------------------------------------------------------------

    def terminate(self, name: str) -> SpotRun:
        """Cancels the spot request (a persistent one would relaunch) and terminates the instances."""
        run = self.spot_store.get_run(name)
        resources = dict(run.resources)
        with aws_errors(f"terminating spot run {name}"):
            if resources.get("spot_request_id"):
                with contextlib.suppress(Exception):
                    self._ec2.cancel_spot_instance_requests(SpotInstanceRequestIds=[resources["spot_request_id"]])
            if resources.get("instance_ids"):
                self._ec2.terminate_instances(InstanceIds=list(resources["instance_ids"]))
        self.spot_store.add_event(SpotEvent(name, time.time(), "terminated", (resources.get("instance_ids") or [""])[-1]))
        return self.spot_store.update_run(name, status=SpotRunStatus.TERMINATED, ended_at=time.time(),
                                          detail="Terminated by the user")

    def cleanup(self, name: str) -> list[str]:
        """Deletes the run's security group, instance profile and role once its instances are gone."""
        run = self.spot_store.get_run(name)
        if any(i["State"]["Name"] != "terminated" for i in self._instances(name)):
            raise InvalidInputError(f"{name} still has instances that are not terminated: terminate it first")
        deleted = self._delete_resources(dict(run.resources))
        kept = {k: v for k, v in run.resources.items() if k not in ("security_group_id", "profile", "role")}
        self.spot_store.update_run(name, resources=kept)
        return deleted

    def _delete_resources(self, resources: dict[str, Any]) -> list[str]:
        deleted = []
        with aws_errors("deleting the run's resources"):
            if resources.get("security_group_id"):
                self._ec2.delete_security_group(GroupId=resources["security_group_id"])
                deleted.append(resources["security_group_id"])
            if resources.get("profile"):
                with contextlib.suppress(Exception):
                    self._iam.remove_role_from_instance_profile(InstanceProfileName=resources["profile"],
                                                                RoleName=resources["role"])
                self._iam.delete_instance_profile(InstanceProfileName=resources["profile"])
                deleted.append(resources["profile"])
            if resources.get("role"):
                self._iam.delete_role_policy(RoleName=resources["role"], PolicyName="run-access")
                self._iam.delete_role(RoleName=resources["role"])
                deleted.append(resources["role"])
        return deleted
