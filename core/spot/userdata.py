"""The user data that turns a fresh EC2 instance into a training run, rendered from a template.

The script installs a systemd unit and starts it, so the training also comes back after a
stopped (or hibernated) persistent spot instance is started again, when user data does not
run a second time. The unit: pull the code (``sourcedir.tar.gz``), install
``requirements.txt`` into the Deep Learning AMI's PyTorch environment, run ``ec2_train.py``
(which pulls the data, resumes from the mirrored checkpoint, trains, uploads
``model.tar.gz``), then

- exit 143 (interruption notice): wait to be reclaimed; a persistent request brings it back
  (a stopped instance reboots and the unit runs again; a hibernated one wakes up in the wait
  loop, sees the notice gone and trains on from the checkpoint);
- done or failed: upload the log, cancel its own spot request (so a persistent request
  launches nothing more) and terminate itself.

Every value is shell-quoted; nothing secret goes in (credentials come from the instance
profile), and the result must stay under EC2's 16 KB limit.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from string import Template

from core.errors import InvalidInputError
from core.training.spec import HYPERPARAMETER_KEY_RE, JOB_NAME_RE

MAX_USER_DATA_BYTES = 16 * 1024
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s'\"\\`$]*)?$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")

_TEMPLATE = Template("""#!/bin/bash
# EC2 Spot training run $run_name, rendered by the console. No secrets: AWS credentials come
# from the instance profile, which may only touch this run's S3 prefix.
set -euo pipefail
mkdir -p /opt/smc
cat > /opt/smc/run.sh <<'SMC_RUN'
#!/bin/bash
set -uo pipefail
export AWS_DEFAULT_REGION=$region
RUN_NAME=$run_name
export TRAINING_JOB_NAME=$run_name
CODE_URI=$code_uri
OUTPUT_URI=$output_uri
WORK=/opt/smc/work
LOG=/var/log/smc-spot.log
exec > >(tee -a "$$LOG") 2>&1
IMDS=http://169.254.169.254
TOKEN=$$(curl -sS -X PUT "$$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 600')
INSTANCE_ID=$$(curl -sS -H "X-aws-ec2-metadata-token: $$TOKEN" "$$IMDS/latest/meta-data/instance-id")
echo "smc: run $$RUN_NAME on $$INSTANCE_ID"
upload_log() { aws s3 cp "$$LOG" "$$OUTPUT_URI/logs/$$INSTANCE_ID.log" --only-show-errors || true; }
end_request() {
  REQUEST_ID=$$(aws ec2 describe-instances --instance-ids "$$INSTANCE_ID" \\
    --query 'Reservations[0].Instances[0].SpotInstanceRequestId' --output text || true)
  if [ -n "$$REQUEST_ID" ] && [ "$$REQUEST_ID" != "None" ]; then
    aws ec2 cancel-spot-instance-requests --spot-instance-request-ids "$$REQUEST_ID" || true
  fi
  upload_log
  aws ec2 terminate-instances --instance-ids "$$INSTANCE_ID" || shutdown -h now
}
if [ -f /opt/pytorch/bin/activate ]; then source /opt/pytorch/bin/activate; fi
mkdir -p "$$WORK/code" "$$WORK/model" "$$WORK/output/data" "$$WORK/checkpoints"
aws s3 cp "$$CODE_URI" "$$WORK/sourcedir.tar.gz" --only-show-errors || { end_request; exit 1; }
tar -xzf "$$WORK/sourcedir.tar.gz" -C "$$WORK/code"
python3 -m pip install --quiet --disable-pip-version-check -r "$$WORK/code/requirements.txt" || { end_request; exit 1; }
export SM_MODEL_DIR="$$WORK/model" SM_OUTPUT_DIR="$$WORK/output" SM_OUTPUT_DATA_DIR="$$WORK/output/data"
export SM_CHECKPOINT_DIR="$$WORK/checkpoints" SM_NUM_GPUS=$$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
export SM_NUM_CPUS=$$(nproc) SMC_SCRATCH_DIR="$$WORK/scratch" PYTHONUNBUFFERED=1
cd "$$WORK/code"
while true; do
  python3 ec2_train.py --data-uri $data_uri --checkpoint-uri $checkpoint_uri --output-uri $output_uri \\
    --instance-id "$$INSTANCE_ID" --notice-poll-s 5$hyperparameters
  CODE=$$?
  echo "smc: ec2_train.py exited with $$CODE"
  upload_log
  if [ "$$CODE" -ne 143 ]; then break; fi
  # Interrupted: the checkpoint is saved and mirrored. A stopped instance reboots and systemd
  # starts this unit again; a hibernated one wakes up here, once the notice is gone: train on.
  echo "smc: interruption notice: checkpoint saved, waiting for the reclaim"
  while true; do
    sleep 5
    TOKEN=$$(curl -sS -X PUT "$$IMDS/latest/api/token" -H 'X-aws-ec2-metadata-token-ttl-seconds: 600' || true)
    STATUS=$$(curl -s -o /dev/null -w '%{http_code}' -H "X-aws-ec2-metadata-token: $$TOKEN" \\
      "$$IMDS/latest/meta-data/spot/instance-action" || true)
    if [ "$$STATUS" = "404" ]; then break; fi
  done
done
end_request
SMC_RUN
chmod 0755 /opt/smc/run.sh
cat > /etc/systemd/system/smc-spot.service <<'SMC_UNIT'
[Unit]
Description=EC2 Spot training run (sm-console)
After=network-online.target
Wants=network-online.target
[Service]
Type=oneshot
ExecStart=/opt/smc/run.sh
TimeoutStartSec=infinity
[Install]
WantedBy=multi-user.target
SMC_UNIT
systemctl daemon-reload
systemctl enable smc-spot.service
systemctl start --no-block smc-spot.service
""")


@dataclass(frozen=True)
class UserDataInputs:
    """What the instance needs to know; validated here, quoted when rendered."""

    run_name: str
    region: str
    code_uri: str
    data_uri: str
    checkpoint_uri: str
    output_uri: str
    hyperparameters: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not JOB_NAME_RE.match(self.run_name):
            raise InvalidInputError(f"run name {self.run_name!r}: letters, digits and hyphens only")
        if not _REGION.match(self.region):
            raise InvalidInputError(f"region {self.region!r} is not an AWS region name")
        for label, uri in (("code_uri", self.code_uri), ("data_uri", self.data_uri),
                           ("checkpoint_uri", self.checkpoint_uri), ("output_uri", self.output_uri)):
            if not _S3_URI.match(uri):
                raise InvalidInputError(f"{label}: {uri!r} is not an s3://bucket/key URI without quotes or spaces")
        for key, value in self.hyperparameters.items():
            if not HYPERPARAMETER_KEY_RE.match(key):
                raise InvalidInputError(f"hyperparameters: invalid name {key!r}")
            if "\n" in str(value) or "\0" in str(value):
                raise InvalidInputError(f"hyperparameters: {key} has a line break")


def render_user_data(inputs: UserDataInputs) -> str:
    """The user data script for one run.

    Raises:
        InvalidInputError: the script would exceed EC2's 16 KB limit.
    """
    q = shlex.quote
    hyperparameters = "".join(f" \\\n  --{key} {q(str(value))}" for key, value in inputs.hyperparameters.items())
    script = _TEMPLATE.substitute(
        run_name=q(inputs.run_name), region=q(inputs.region), code_uri=q(inputs.code_uri),
        data_uri=q(inputs.data_uri), checkpoint_uri=q(inputs.checkpoint_uri), output_uri=q(inputs.output_uri),
        hyperparameters=hyperparameters,
    )
    size = len(script.encode())
    if size > MAX_USER_DATA_BYTES:
        raise InvalidInputError(f"user data is {size} bytes; EC2 allows {MAX_USER_DATA_BYTES}: fewer hyperparameters")
    return script
