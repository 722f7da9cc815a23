"""The Values view of a finite-horizon run: its slider steps over the time step h = 0..H with the
sweep slider's keys ([ ] one step, { } first/last), showing the non-stationary V_h and π_h. A real
run (backward induction on the maze, executed as the CLI does) in a real SQLite store, a real
Textual pilot; the numbers on screen are checked against the stored V_h and against hand values."""

from __future__ import annotations

import pytest

from rltui.store.queries import artifact_series
from rltui.tui.widgets.values import value_label
from test_tabular_algos import run
from test_tui_common import make_app, settle, text_of

GAMMA, H = 0.9, 4


def shown_values(screen, layout) -> dict[str, str]:
    """State name -> the V label in its grid cell (the second line of each grid row)."""
    lines = text_of(screen.query_one("#values-grid")).split("\n")
    cols = int(layout["cols"])
    width = len(lines[1]) // cols
    where = {tuple(p): name for p, name in zip(layout["positions"], layout["states"])}
    out = {}
    for r in range(int(layout["rows"])):
        for c in range(cols):
            if (r, c) in where:
                out[where[(r, c)]] = lines[2 * r + 1][c * width:(c + 1) * width].strip()
    return out, width


def arrow_in(screen, layout, state: str) -> str:
    lines = text_of(screen.query_one("#values-grid")).split("\n")
    cols = int(layout["cols"])
    width = len(lines[1]) // cols
    r, c = layout["positions"][layout["states"].index(state)]
    return lines[2 * r][c * width:(c + 1) * width]


async def test_the_values_slider_steps_over_h_showing_the_stored_v_h_and_pi_h(store):
    from rltui.tui.screens.run import RunScreen

    out = run(store, {"id": "maze", "gamma": GAMMA}, {"id": "value_iteration", "horizon": H})
    layout = out["layout"]
    with store.read() as session:
        V_by_steps_left = {k: [float(v) for v in V] for k, V in artifact_series(session, out["id"], "V")}
    assert sorted(V_by_steps_left) == list(range(H + 1))

    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(RunScreen(out["id"]))
        await settle(pilot, 3)
        screen = app.screen
        await pilot.press("2")
        await settle(pilot)

        async def at(h: int) -> dict[str, str]:
            slider = text_of(screen.query_one("#sweep-slider"))
            assert f"time step h {h}/{H}" in slider and f"{H - h} step" in slider
            shown, width = shown_values(screen, layout)
            stored = V_by_steps_left[H - h]  # V_h is stored at step H - h, the steps left
            assert shown == {s: value_label(v, width).strip() for s, v in zip(layout["states"], stored)}
            return shown

        first = await at(0)  # the run opens at h = 0: V_0, the value of the whole horizon
        # hand values: (2,3) is one move from the goal (+1), (1,3) two (-0.01, then +1 discounted)
        assert first["(2,3)"] == "+1.00" and first["(1,3)"] == f"{-0.01 + GAMMA:+.2f}"
        assert "↓" in arrow_in(screen, layout, "(2,3)")  # π_0 moves into the goal

        await pilot.press("right_square_bracket")
        await settle(pilot)
        await at(1)
        for _ in range(2):
            await pilot.press("right_square_bracket")
            await settle(pilot)
        one_left = await at(3)  # one step left: from (1,3) the goal is out of reach
        assert one_left["(1,3)"] == "-0.01" and one_left["(2,3)"] == "+1.00"
        assert one_left != first  # V_h changes with h
        assert "↓" in arrow_in(screen, layout, "(2,3)")  # π_3 still moves into the goal

        await pilot.press("right_curly_bracket")  # last: h = H, no steps left
        await settle(pilot)
        end = await at(H)
        assert set(end.values()) == {"+0.00"}
        assert "no steps left" in text_of(screen.query_one("#values-grid"))
        assert "↓" not in arrow_in(screen, layout, "(2,3)")

        await pilot.press("left_square_bracket")  # one step back: h = H - 1
        await settle(pilot)
        await at(H - 1)
        await pilot.press("left_curly_bracket")  # first: h = 0 again
        await settle(pilot)
        assert await at(0) == first


@pytest.mark.parametrize("horizon", [1])
async def test_a_one_step_horizon_slides_between_its_two_values(store, horizon):
    from rltui.tui.screens.run import RunScreen

    out = run(store, {"id": "chain", "n": 4, "gamma": 1.0}, {"id": "policy_iteration", "horizon": horizon})
    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.push_screen(RunScreen(out["id"]))
        await settle(pilot, 3)
        screen = app.screen
        await pilot.press("2")
        await settle(pilot)
        assert "time step h 0/1" in text_of(screen.query_one("#sweep-slider"))
        strip = text_of(screen.query_one("#values-grid"))
        assert "+1.00" in strip  # state 2 reaches the goal in its one step
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert "time step h 1/1" in text_of(screen.query_one("#sweep-slider"))
        assert "+1.00" not in text_of(screen.query_one("#values-grid"))


async def test_blackjack_values_are_drawn_as_figure_5_2(store):
    from rltui.store.queries import latest_artifact
    from rltui.tui.screens.run import RunScreen

    out = run(store, {"id": "Blackjack-v1"}, {"id": "monte_carlo", "exploring_starts": True, "episodes": 3000},
              record={"last": 0})
    with store.read() as session:
        grids = latest_artifact(session, out["id"], "blackjack")
    app = make_app(store)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        app.push_screen(RunScreen(out["id"]))
        await settle(pilot, 3)
        screen = app.screen
        await pilot.press("2")
        await settle(pilot)
        lines = text_of(screen.query_one("#values-grid")).split("\n")
        for key, title in (("usable_ace", "usable ace:"), ("no_usable_ace", "no usable ace:")):
            top = next(i for i, line in enumerate(lines) if line.startswith(title))
            assert lines[top + 1].split() == ["A", "2", "3", "4", "5", "6", "7", "8", "9", "10"]
            for row, player in enumerate(range(21, 11, -1)):  # 21 at the top, as in the figure
                cells = lines[top + 2 + row].split()
                assert cells[0] == str(player)
                i = player - 12
                expected = [("H" if a == 1 else "S") + f"{v:+.2f}"
                            for a, v in zip(grids[key]["policy"][i], grids[key]["V"][i])]
                assert cells[1:] == expected
