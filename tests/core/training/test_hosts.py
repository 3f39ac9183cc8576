"""The environments of a local job's processes: one per SageMaker host, meeting on 127.0.0.1."""

from __future__ import annotations

import json

from core.training.layout import host_environments, host_names


def test_one_instance_keeps_the_environment_as_it_is() -> None:
    env = {"SM_HOSTS": '["localhost"]', "SM_CURRENT_HOST": "localhost", "SM_NUM_CPUS": "2"}
    assert host_names(1) == ["localhost"]
    assert host_environments(env, 1, 5000) == [env]


def test_each_instance_is_a_host_with_its_share_of_the_cpus() -> None:
    env = {"SM_HOSTS": '["localhost"]', "SM_CURRENT_HOST": "localhost", "SM_NUM_CPUS": "8", "KEEP": "x"}
    first, second, third = host_environments(env, 3, 5000)
    assert [e["SM_CURRENT_HOST"] for e in (first, second, third)] == ["algo-1", "algo-2", "algo-3"]
    for each in (first, second, third):
        assert json.loads(each["SM_HOSTS"]) == ["algo-1", "algo-2", "algo-3"]
        assert (each["MASTER_ADDR"], each["MASTER_PORT"], each["SM_NUM_CPUS"], each["KEEP"]) == (
            "127.0.0.1", "5000", "2", "x")
    assert env["SM_CURRENT_HOST"] == "localhost"  # the job's own environment is left alone


def test_more_instances_than_cpus_still_get_a_thread_each() -> None:
    assert {e["SM_NUM_CPUS"] for e in host_environments({"SM_NUM_CPUS": "2"}, 4, 5000)} == {"1"}
