"""The training process keeps freed memory for its next update (rltui/algos/cpu_memory.py): a TD3
update on Pendulum's shapes stops faulting its activations' pages in afresh each time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Real TD3 updates in a fresh process (the allocator's state is per process), counting the page faults
# the kernel served during 30 of them, after 30 to warm up.
UPDATES = textwrap.dedent("""
    import json, resource, sys, types
    import torch
    from rltui.algos.cpu_memory import keep_freed_memory
    from rltui.algos.td3 import TD3
    applied = keep_freed_memory() if sys.argv[1] == "keep" else False
    torch.set_num_threads(1)
    params = types.SimpleNamespace(net_arch=[400, 300], activation="relu", init="torch", learning_rate=1e-3,
                                   action_noise=0.1, target_policy_noise=0.2, target_noise_clip=0.5,
                                   policy_delay=2, tau=0.005, max_grad_norm=None)
    agent = TD3(3, 1, params, 0.98, torch.device("cpu"))
    g = torch.Generator().manual_seed(0)
    def batch():
        return types.SimpleNamespace(obs=torch.randn(256, 3, generator=g), actions=torch.rand(256, 1, generator=g) * 2 - 1,
                                     rewards=torch.randn(256, generator=g), next_obs=torch.randn(256, 3, generator=g),
                                     terminated=torch.zeros(256))
    for k in range(30):
        agent.update(batch(), k)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for k in range(30, 60):
        agent.update(batch(), k)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    print(json.dumps({"applied": applied, "faults_per_update": faults / 30}))
""")


def faults_per_update(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", UPDATES, mode], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc is tuned on Linux only")
def test_a_training_process_reuses_its_freed_memory_instead_of_faulting_it_in_each_update():
    default, kept = faults_per_update("default"), faults_per_update("keep")
    assert kept["applied"] is True
    # measured: ~103-104 faults per update with glibc's defaults (220-670 when the update ran under
    # autograd, which frees more large tensors), 0-7 kept
    assert default["faults_per_update"] > 50, default
    assert kept["faults_per_update"] < min(25, default["faults_per_update"] / 10), (kept, default)
