"""DQN from pixels: MinAtar's games by id, the convolutional torso, replay in the frame's own dtype,
and replay in the lab drawing a frame's channels (through the real runner, store and Textual pilot)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sqlalchemy import select

from rltui.config import ConfigError, load_config_text
from rltui.recorder import StoreRecorder
from rltui.runner.execute import create_run, execute_run, stored_config
from rltui.store.models import Episode, Run
from rltui.store.queries import latest_artifact, metric_series, trajectory
from test_tui_common import make_app, settle, text_of

GAMES = {  # id: (channels, actions) of minatar 1.0.15's -v1 games (minimal action sets)
    "MinAtar/Breakout-v1": (4, 3),
    "MinAtar/Asterix-v1": (4, 5),
    "MinAtar/Freeway-v1": (7, 3),
    "MinAtar/Seaquest-v1": (10, 6),
    "MinAtar/SpaceInvaders-v1": (6, 4),
}

SMOKE = """seed = 3
device = "cpu"
[env]
id = "MinAtar/Breakout-v1"
num_envs = 2
[algo]
id = "dqn"
total_timesteps = 600
learning_starts = 200
buffer_size = 2000
batch_size = 16
train_freq = 4
target_update_interval = 100
exploration_fraction = 0.5
net_arch = [32]
eval_every = 300
eval_episodes = 2
log_every = 100
checkpoint_every = 0
[record]
last = 2
"""


def _run(store, text: str = SMOKE) -> int:
    run_id = create_run(store, load_config_text(text))
    status = execute_run(store, run_id)
    with store.read() as s:
        run = s.get(Run, run_id)
        assert status == "completed", f"{run.status}: {run.error}\n{run.traceback}"
    return run_id


# --- the envs --------------------------------------------------------------------------------------
def test_minatar_ids_are_registered_with_gymnasium_and_step_bool_frames():
    import gymnasium as gym

    from rltui.envs import minatar
    from rltui.schemas.control import MinAtarParams

    minatar.register()
    for env_id, (channels, actions) in GAMES.items():
        assert env_id in gym.registry
        env = minatar.MinAtarEnv(env_id, MinAtarParams())
        layout = env.layout()
        assert layout["kind"] == "frame" and (layout["rows"], layout["cols"]) == (10, 10)
        assert len(layout["channels"]) == channels and len(layout["actions"]) == actions
        venv = env.vector(seed=0, num_envs=2)
        obs = venv.reset()
        assert obs.shape == (2, 10, 10, channels) and obs.dtype == np.bool_
        obs, rewards, terminated, truncated, final_obs, _ = venv.step(np.zeros(2, np.int64))
        assert obs.dtype == np.bool_ and final_obs.shape == obs.shape
    breakout = minatar.MinAtarEnv("MinAtar/Breakout-v1", MinAtarParams())
    assert breakout.layout()["channels"] == ["paddle", "ball", "trail", "brick"]
    assert breakout.layout()["actions"] == ["noop", "left", "right"]


def test_frame_codes_set_one_bit_per_channel():
    from rltui.envs.minatar import frame_codes

    frame = np.zeros((2, 3, 4), bool)
    frame[0, 0, 0] = True  # paddle
    frame[1, 2, 1] = frame[1, 2, 3] = True  # ball and brick in one pixel
    assert frame_codes(frame) == [[1, 0, 0], [0, 0, 2 | 8]]


@pytest.mark.parametrize("algo", ["reinforce", "sac", "q_learning"])
def test_algorithms_without_a_conv_torso_are_refused_on_a_pixel_env_in_one_line(algo):
    with pytest.raises(ConfigError) as err:
        load_config_text(f'[env]\nid = "MinAtar/Breakout-v1"\n[algo]\nid = "{algo}"\n')
    message = str(err.value)
    assert "\n" not in message and "algo.id" in message and f"'{algo}' cannot run on 'MinAtar/Breakout-v1'" in message


def test_a_missing_minatar_is_one_line_naming_the_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "minatar" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        load_config_text('[env]\nid = "MinAtar/Breakout-v1"\n[algo]\nid = "dqn"\n', source="run.toml")
    message = str(err.value)
    assert "\n" not in message and "run.toml" in message and "env.id" in message
    assert "pip install --no-deps minatar==1.0.15" in message


# --- the network and the buffer --------------------------------------------------------------------
def test_conv_torso_is_minatars_and_its_shapes_follow_the_frame():
    from rltui.algos.networks import ConvTorso, QNetwork

    torso = ConvTorso((10, 10, 4), [128])
    conv = torso.conv
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding) == (4, 16, (3, 3), (1, 1), (0, 0))
    assert torso.dense[0].in_features == 16 * 8 * 8 and torso.out_dim == 128
    frames = torch.rand(5, 10, 10, 4) > 0.8  # bool, as MinAtar gives them
    assert torso(frames).shape == (5, 128)
    q = QNetwork((10, 10, 4), 3, [128])
    assert q(frames).shape == (5, 3)
    assert q(frames.to(torch.uint8)).allclose(q(frames))  # any dtype of the same frame: the same values
    # a non-square frame, 7 channels (Freeway)
    assert QNetwork((6, 9, 7), 3, [64, 32])(torch.zeros(2, 6, 9, 7, dtype=torch.bool)).shape == (2, 3)
    # vectors keep their MLP, whether the shape is given as an int or (n,)
    assert not any(isinstance(m, torch.nn.Conv2d) for m in QNetwork((4,), 2, [8]).modules())
    assert QNetwork(4, 2, [8])(torch.zeros(3, 4)).shape == (3, 2)
    with pytest.raises(ValueError, match="at least 3x3"):
        ConvTorso((2, 10, 4), [8])


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8])
def test_replay_holds_frames_in_their_own_dtype_and_samples_float(dtype):
    from rltui.algos.buffers import ReplayBuffer

    capacity = 1000
    replay = ReplayBuffer(capacity, (10, 10, 4), obs_dtype=dtype)
    frame_bytes = 10 * 10 * 4 * np.dtype(dtype).itemsize
    per_transition = replay.nbytes / capacity
    # s and s' at the frame's size, plus the action (int64), reward and terminated (float32): 16 bytes
    assert per_transition == 2 * frame_bytes + 16
    assert replay.obs.dtype == dtype and replay.next_obs.dtype == dtype
    rng = np.random.default_rng(0)
    frames = rng.random((8, 10, 10, 4)) > 0.7
    replay.add(frames[:4].astype(dtype), np.arange(4), np.ones(4), frames[4:].astype(dtype), np.zeros(4))
    batch = replay.sample(64, rng, torch.device("cpu"))
    assert batch.obs.dtype == torch.float32 and batch.next_obs.dtype == torch.float32
    for k in range(64):  # each sampled row is its stored frame, as 0.0/1.0
        a = int(batch.actions[k])
        assert torch.equal(batch.obs[k], torch.from_numpy(frames[a].astype(np.float32)))
        assert torch.equal(batch.next_obs[k], torch.from_numpy(frames[4 + a].astype(np.float32)))


# --- DQN through the runner and the store ----------------------------------------------------------
def test_dqn_on_minatar_stores_frames_and_resume_continues_the_step_count(store):
    from rltui import registry

    run_id = _run(store)
    with store.read() as s:
        run = s.get(Run, run_id)
        assert run.summary["global_step"] >= 600 and run.summary["updates"] > 50
        layout = latest_artifact(s, run_id, "layout")
        assert layout["kind"] == "frame" and layout["channels"] == ["paddle", "ball", "trail", "brick"]
        ep = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.phase == "eval",
                                             Episode.has_trajectory)).first()
        steps = trajectory(s, ep.id)
        frame = steps[0].state["frame"]
        assert len(frame) == 10 and all(len(row) == 10 for row in frame)
        paddle_cells = [c for row in frame for c in row if c & 1]
        assert len(paddle_cells) == 1  # one paddle on the bottom row
        assert any(c & 8 for c in frame[1])  # bricks
        assert len(steps[0].extras["Q"]) == 3 and steps[0].extras["V"] == pytest.approx(max(steps[0].extras["Q"]))
        first_episodes = run.summary["episodes"]
    # resume with a larger budget: weights, optimizer, replay, counters and RNGs come back
    config = stored_config(store, run_id)
    env = registry.load_callable(registry.env_spec(config.env_id).factory)(config.env)
    recorder = StoreRecorder(store, run_id)
    assert recorder.last_checkpoint()[0] >= 600
    params = config.algo.model_copy(update={"total_timesteps": 1000})
    summary = registry.load_callable(registry.algo_spec("dqn").entry)(env, params, recorder, seed=3, device="cpu")
    recorder.close()
    assert summary["global_step"] >= 1000 and summary["episodes"] > first_episodes
    with store.read() as s:
        steps = [r[0] for r in metric_series(s, run_id, "epsilon")]
        assert max(steps) > 600 and steps == sorted(steps)
        indices = sorted(s.scalars(select(Episode.index).where(Episode.run_id == run_id, Episode.phase == "train")))
        assert indices == list(range(len(indices)))


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_ppo_and_a2c_share_one_conv_torso_on_frames_through_the_runner(store, algo):
    from rltui.algos.networks import ActorCritic, ConvTorso

    agent = ActorCritic((10, 10, 4), 3, None, [32], "relu")
    assert agent.shared and isinstance(agent.body, ConvTorso)  # one body under π and V, as Atari actor-critics
    frames = torch.rand(6, 10, 10, 4) > 0.8
    logits, value = agent(frames)
    assert logits.shape == (6, 3) and value.shape == (6,)
    run_id = _run(store, f"""seed = 1
device = "cpu"
[env]
id = "MinAtar/Breakout-v1"
num_envs = 2
[algo]
id = "{algo}"
total_timesteps = 256
n_steps = 16
net_arch = [32]
eval_every = 128
eval_episodes = 1
""")
    with store.read() as s:
        run = s.get(Run, run_id)
        assert run.summary["global_step"] >= 256 and run.summary["updates"] >= 1
        ep = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.phase == "eval", Episode.has_trajectory)).first()
        first = trajectory(s, ep.id)[0]
        assert len(first.state["frame"]) == 10 and sum(first.extras["pi"]) == pytest.approx(1.0, abs=1e-5)


# --- replay in the lab -----------------------------------------------------------------------------
async def test_replay_draws_a_minatar_frame_with_its_channels_beside_q(store):
    from rltui.tui.screens.replay import ReplayScreen
    from rltui.tui.widgets.frame import PALETTE

    run_id = _run(store)
    with store.read() as s:
        ep_id = s.scalar(select(Episode.id).where(Episode.run_id == run_id, Episode.phase == "eval",
                                                  Episode.has_trajectory).order_by(Episode.id))
        first = trajectory(s, ep_id)[0].state["frame"]
    app = make_app(store)
    async with app.run_test(size=(100, 36)) as pilot:
        await settle(pilot)
        app.push_screen(ReplayScreen(run_id, ep_id))
        await settle(pilot, 3)
        screen = app.screen
        frame_view = screen.query_one("#replay-frame")
        assert frame_view.display and not screen.query_one("#replay-state").display
        content = frame_view.content
        text = content.plain
        for name in ("paddle", "ball", "trail", "brick"):
            assert name in text  # the legend names every channel
        lines = text.splitlines()
        grid = lines[1:11]
        assert len(grid) == 10 and all(len(line) == 20 for line in grid)  # 10 pixels of 2 cells per row
        # each lit pixel is drawn in its channel's colour: the bricks' row in the brick colour
        brick_row = next(r for r, row in enumerate(first) if all(c == 8 for c in row))
        start = sum(len(line) + 1 for line in lines[:1 + brick_row])
        styles = {str(span.style) for span in content.spans if start <= span.start < start + 20}
        assert styles == {PALETTE[3]}
        assert "Q(s,·)" in text_of(screen.query_one("#replay-extras"))
        assert "left" in text_of(screen.query_one("#replay-extras"))  # the actions are named
        before = text
        await pilot.press("end")
        await settle(pilot)
        assert frame_view.content.plain != before  # the frame follows the step


async def test_new_run_form_offers_the_minatar_games_and_says_when_minatar_is_missing(store, monkeypatch):
    import importlib.util

    from textual.widgets import Select

    from rltui.tui.screens.new_run import NewRunScreen

    app = make_app(store)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        app.push_screen(NewRunScreen(initial={"env": {"id": "MinAtar/Breakout-v1"}, "algo": {"id": "dqn"}}))
        await settle(pilot, 3)
        screen = app.screen
        offered = [value for _, value in screen.env_options()]
        assert set(GAMES) <= set(offered)
        assert [value for _, value in screen.algo_options()] == ["a2c", "dqn", "ppo"]  # those with a conv torso
        assert "✔ valid" in text_of(screen.query_one("#form-error"))
        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "minatar" else real(name, *a))
        assert not screen.validate()
        error = text_of(screen.query_one("#err-env-id"))
        assert "pip install --no-deps minatar==1.0.15" in error and "\n" not in error.strip()
        assert screen.query_one("#f-env-id", Select).value == "MinAtar/Breakout-v1"


def test_an_atari_config_without_ale_py_is_one_line_naming_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ale_py" else real(name, *a))
    with pytest.raises(ConfigError) as err:
        load_config_text('[env]\nid = "ALE/Breakout-v5"\n[algo]\nid = "dqn"\n', source="atari.toml")
    message = str(err.value)
    assert "\n" not in message and "atari.toml" in message and "pip install 'rltui[atari]'" in message


def test_atari_frames_get_the_nature_network_and_replay_draws_them_in_gray():
    from rich.style import Style

    from rltui.algos.networks import NatureTorso, QNetwork
    from rltui.tui.widgets.frame import render_state

    q = QNetwork((84, 84, 4), 4, [512])
    assert isinstance(q.net[0], NatureTorso) and q.net[0].dense[0].in_features == 64 * 7 * 7
    assert q(torch.full((2, 84, 84, 4), 255, dtype=torch.uint8)).shape == (2, 4)
    rows = [[0, 255, 128], [255, 0, 128], [64, 64, 64]]
    content = render_state({"kind": "frame", "channels": ["gray"]}, {"gray": rows})
    lines = content.plain.splitlines()
    assert lines[1:] == ["▀▀▀", "▀▀▀"]  # 3 rows of pixels in 2 lines of half blocks
    first_line = [Style.parse(str(span.style)) for span in content.spans if span.end - span.start == 1][:3]
    assert [(s.color.triplet.red, s.bgcolor.triplet.red) for s in first_line] == [(0, 255), (255, 0), (128, 128)]
