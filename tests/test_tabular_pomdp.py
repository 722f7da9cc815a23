"""Partial observability on the Tiger problem: the exact belief update by hand, QMDP acting on it,
and Q-learning on observations (as if they were states) doing worse, through the real store."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from conftest import SAMPLE_RUNS
from rltui.config import ConfigError, load_config_text
from rltui.envs.pomdp import load_pomdp
from rltui.store.models import Episode
from test_tabular_algos import run, steps_of

TIGER = str(SAMPLE_RUNS / "mdps" / "tiger.toml")


def test_the_belief_update_by_hand():
    tiger = load_pomdp(TIGER)
    listen, hear_left = tiger.mdp.actions.index("listen"), tiger.observations.index("hear-left")
    b = tiger.belief_update(tiger.mdp.start, listen, hear_left)
    assert b == pytest.approx([0.85, 0.15, 0.0], abs=1e-15)
    b2 = tiger.belief_update(b, listen, hear_left)
    assert b2[0] == pytest.approx(0.85**2 / (0.85**2 + 0.15**2), abs=1e-15)
    back = tiger.belief_update(b2, listen, tiger.observations.index("hear-right"))
    assert back == pytest.approx(b, abs=1e-15)  # one hearing each way cancels


def test_qmdp_listens_until_sure_and_beats_q_learning_on_observations(store):
    env = {"id": "pomdp", "path": TIGER}
    qmdp = run(store, env, {"id": "qmdp", "episodes": 300}, record={"eval": True})
    ql = run(store, env, {"id": "q_learning", "episodes": 3000, "alpha": 0.05, "epsilon": 0.1, "max_steps": 100,
                          "eval_episodes": 300}, record={"last": 0})
    assert qmdp["summary"]["mean_return"] > ql["summary"]["greedy_return"] + 5
    assert qmdp["summary"]["V_start"] == pytest.approx(10.0)  # the hidden MDP: open the right door at once
    with store.read() as session:
        first = session.scalars(select(Episode.id).where(Episode.run_id == qmdp["id"]).order_by(Episode.index)).first()
    steps = steps_of(store, first)
    opened = steps[-1]
    assert all(st.action == 0 for st in steps[:-1]) and opened.action in (1, 2)  # listen, ..., open
    assert max(opened.extras["belief"][:2]) > 0.99 and all(max(st.extras["belief"][:2]) < 0.99 for st in steps[:-1])
    assert np.isclose(sum(steps[0].extras["belief"]), 1.0) and steps[0].extras["belief"][:2] == [0.5, 0.5]


def test_bad_pomdp_files_are_refused(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text(open(TIGER).read().replace('["listen", "tiger-left", "hear-right", 0.15]', '["listen", "tiger-left", "hear-right", 0.25]'))
    with pytest.raises(ConfigError, match="observation_probs.*sums to 1.1"):
        load_config_text(f'[env]\nid = "pomdp"\npath = "{bad}"\n[algo]\nid = "qmdp"\n')
