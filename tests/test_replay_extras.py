"""Replay draws what the agent computed even where the MDP has holes: unavailable actions (a null
Q(s,a)) are named as such, and a POMDP run's belief b(s) is drawn per step."""

from __future__ import annotations

from sqlalchemy import select

from rltui.config import load_config_file
from rltui.runner.execute import create_run, execute_run
from rltui.store.models import Episode
from rltui.tui.widgets.values import bars

from conftest import SAMPLE_RUNS
from test_tui_common import make_app, settle, text_of


def test_bars_name_an_unavailable_action_and_draw_the_rest():
    text = bars(["left", "right", "stay"], [None, 0.5, -0.25], width=8, highlight=1).plain.splitlines()
    assert text[0].split() == ["left", "unavailable"]
    assert text[1].startswith("right") and "█" in text[1] and text[1].endswith("+0.500  ◀")
    assert text[2].startswith(" stay") and text[2].endswith("-0.250")
    assert bars(["a"], [None]).plain == ""  # nothing known: nothing drawn


async def test_replay_of_a_tiger_episode_draws_the_belief(store):
    run_id = create_run(store, load_config_file(SAMPLE_RUNS / "tiger_qmdp.toml", overrides=["algo.episodes=20"]))
    execute_run(store, run_id)
    with store.read() as s:
        episode = s.scalars(select(Episode).where(Episode.run_id == run_id, Episode.has_trajectory)
                            .order_by(Episode.id.desc())).first()
    from rltui.tui.screens.replay import ReplayScreen

    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(ReplayScreen(run_id, episode.id))
        await settle(pilot, 3)
        extras = text_of(app.screen.query_one("#replay-extras"))
        assert "belief b(s)" in extras and "Q(s,·)" in extras
        assert "tiger-left" in extras and "tiger-right" in extras  # the states, by name
        assert "0.500" in extras  # the first step: the tiger is behind either door with ½
