"""IAM documents of a spot run's instance profile: the least the instance needs.

The instance may read the dataset's prefix, read and write its own run prefix (code,
checkpoints, outputs) and, tagged with its run, cancel its own spot request and terminate
itself when training is done. Nothing else: no other prefix, bucket or service.
"""

from __future__ import annotations

from typing import Any

RUN_TAG = "smc-spot-run"
"""Tag on the instance, its volumes and its spot request: the run's name."""


def trust_policy() -> dict[str, Any]:
    """Lets EC2 instances assume the role (and nothing else)."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }


def _object_arn(bucket: str, prefix: str) -> str:
    return f"arn:aws:s3:::{bucket}/{prefix.strip('/')}/*"


def instance_policy(*, bucket: str, run_prefix: str, data_prefix: str, run_name: str,
                    event_bus_arn: str | None = None) -> dict[str, Any]:
    """The instance role's inline policy.

    Args:
        bucket: the console's bucket.
        run_prefix: the run's own prefix (``<prefix>/spot-runs/<name>``): read and write.
        data_prefix: the dataset's prefix: read only.
        run_name: value of the :data:`RUN_TAG` tag that the EC2 actions are limited to.
        event_bus_arn: the bus the run's own rule evaluator puts fired rules on (``debug-rules-in-job``);
            None: no events.
    """
    run_prefix, data_prefix = run_prefix.strip("/"), data_prefix.strip("/")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadDataset", "Effect": "Allow", "Action": "s3:GetObject",
             "Resource": _object_arn(bucket, data_prefix)},
            {"Sid": "ReadWriteRun", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": _object_arn(bucket, run_prefix)},
            {"Sid": "ListOwnPrefixes", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": f"arn:aws:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": [f"{data_prefix}/*", f"{run_prefix}/*"]}}},
            {"Sid": "EndOwnRequest", "Effect": "Allow",
             "Action": ["ec2:CancelSpotInstanceRequests", "ec2:TerminateInstances"], "Resource": "*",
             "Condition": {"StringEquals": {f"aws:ResourceTag/{RUN_TAG}": run_name}}},
            {"Sid": "FindOwnRequest", "Effect": "Allow", "Action": "ec2:DescribeInstances", "Resource": "*"},
            *([{"Sid": "PutRuleEvents", "Effect": "Allow", "Action": "events:PutEvents", "Resource": event_bus_arn}]
              if event_bus_arn else []),
        ],
    }
