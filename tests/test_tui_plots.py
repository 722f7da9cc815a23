"""Plots that do not lie, the metric grid, Compare on any metric and on KL, and system metrics.

Real SQLite stores written through the real StoreRecorder (tests/plot_stores.py), real Textual
pilots, the real worker heartbeat for sys/* metrics.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from plot_stores import GOLD_PEAK, GOLD_PEAK_D, add_honest_metrics_run, add_lm_runs, add_seed_group
from rltui.store.queries import metric_downsampled
from rltui.tui.widgets.metric_grid import grid_columns, matches
from rltui.tui.widgets.plot import PlotData, Series, envelope_buckets, nice_step, nice_ticks, plot_lines
from test_tui_app import open_run_screen, wait_until
from test_tui_common import demo_store, make_app, settle  # noqa: F401 — fixture


# --- ticks and constants ----------------------------------------------------------------------------
def test_ticks_are_round_1_2_5_steps():
    assert [nice_step(s, 4) for s in (1.0, 7.0, 0.03, 230.0, 1e6)] == [0.5, 2.0, 0.01, 100.0, 500_000.0]
    lo, hi, ticks, labels = nice_ticks(-212.3, -0.08, 4)
    assert (lo, hi) == (-300.0, 0.0) and labels == ["-300", "-200", "-100", "0"]
    _, _, _, labels = nice_ticks(0.0, 0.37, 4)
    assert labels == ["0", "0.1", "0.2", "0.3", "0.4"]
    _, _, _, labels = nice_ticks(0, 1_000_000, 5, snap=False)
    assert labels == ["0", "0.2M", "0.4M", "0.6M", "0.8M", "1.0M"]


def test_a_constant_is_a_flat_line_with_a_short_label():
    # α = 0.1 logged as 0.1 and as 0.09999999999999999: rounding noise, not a V-shaped curve.
    lo, hi, ticks, labels = nice_ticks(0.09999999999999999, 0.1, 4)
    assert labels == ["0.08", "0.10", "0.12"] and lo < 0.1 < hi
    ys = [0.1 if i % 2 else 0.09999999999999999 for i in range(200)]
    text = "\n".join(line.text for line in plot_lines(PlotData(series=[Series("", list(range(200)), ys)]), 60, 12))
    assert "0.0999" not in text and "0.10┤" in text
    rows = [i for i, line in enumerate(text.splitlines()) if "⣀" in line or "⠉" in line or "⠒" in line]
    assert len(set(rows)) == 1, text  # one row of braille: flat


# --- downsampling keeps spikes, bests and NaNs ------------------------------------------------------
def test_envelope_keeps_each_buckets_min_and_max_and_reports_nans():
    xs = list(range(1000))
    ys = [float(x % 10) for x in xs]
    ys[321] = 500.0
    ys[700] = float("nan")
    bx, mean, low, high, nans = envelope_buckets(xs, ys, 50)
    assert len(bx) <= 50 and bx[-1] == 999
    assert max(high) == 500.0 and min(low) == 0.0
    assert nans == [bx[next(i for i, x in enumerate(bx) if x >= 700)]]
    assert all(lo <= m <= hi for m, lo, hi in zip(mean, low, high))


def test_store_downsampling_keeps_the_spike_the_best_value_and_the_nan(store_url):
    from rltui.store import open_store

    store = open_store(store_url)
    try:
        run_id = add_honest_metrics_run(store)
        with store.read() as s:
            loss = metric_downsampled(s, run_id, "loss", 60)
            best = metric_downsampled(s, run_id, "best_like", 60)
            td = metric_downsampled(s, run_id, "td_error", 60)
        assert len(loss) <= 60 and max(p.high for p in loss) == 50.0  # the spike, though its bucket's mean is ~2
        assert max(p.value for p in loss) < 5.0
        assert max(p.high for p in best) == pytest.approx(-0.08)  # the best value, not a mean of -140
        assert sum(p.nans for p in td) == 1 and all(p.value == 0.5 for p in td)  # NaN counted, not averaged in
        nan_bucket = next(p for p in td if p.nans)
        assert nan_bucket.x >= 1700
    finally:
        store.dispose()


async def test_run_screen_shows_the_spike_the_nan_and_a_flat_constant(store):
    run_id = add_honest_metrics_run(store)
    app = make_app(store)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_run_screen(app, pilot, run_id)
        await wait_until(pilot, lambda: "50" in screen.query_one("#metric-loss").text)
        loss = screen.query_one("#metric-loss")
        assert loss.data.series[0].upper and max(loss.data.series[0].upper) == 50.0
        assert "50┤" in loss.text  # the y axis reaches the spike
        td = screen.query_one("#metric-td_error")
        assert "1 NaN" in td.data.title and "NaN ×1" in td.text and "×" in td.text
        alpha = screen.query_one("#metric-alpha")
        assert "0.10┤" in alpha.text and "0.0999" not in alpha.text


async def test_run_screen_returns_plot_shows_the_best_return():
    """Pendulum's header said best G −0.08 while the plot topped out at −112: now the envelope holds it."""
    from rltui.store import open_store
    from rltui.tui.demo import SimClockRecorder, add_run

    import tempfile

    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"{d}/p.db")
        run_id = add_run(store, "pendulum-sac", {"id": "pendulum"}, {"id": "sac"})
        rec = SimClockRecorder(store, run_id, flush_every=1e9)
        for e in range(2000):
            rec.episode(e, -0.08 if e == 1234 else -1200.0 + 0.5 * e, 200, step=(e + 1) * 200)
        rec.close()
        app = make_app(store)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_run_screen(app, pilot, run_id)
            raw = screen.query_one("#plot-return").data.series[0]
            assert len(raw.xs) <= screen.query_one("#plot-return").columns
            assert max(raw.upper) == pytest.approx(-0.08)
            assert "best G -0.08" in str(screen.query_one("#run-header").render())
        store.dispose()


# --- the metric grid --------------------------------------------------------------------------------
def test_grid_columns_and_filter_words():
    assert [grid_columns(w) for w in (60, 80, 120, 160, 220)] == [1, 1, 1, 2, 3]
    assert matches("eval/reward_mean", "eval/") and matches("sys/rss_mb", "loss sys/*")
    assert not matches("loss", "eval/ sys/*") and matches("anything", "  ")
    assert matches("Objective/KL", "kl")


async def test_metric_grid_uses_the_width_and_filters_with_slash(demo_store):
    ids = demo_store.demo_ids
    app = make_app(demo_store)
    async with app.run_test(size=(160, 30)) as pilot:
        screen = await open_run_screen(app, pilot, ids["ppo"])
        grid = screen.query_one("#metric-grid")
        plots = {p.id: p for p in grid.query("PlotView")}
        assert set(plots) >= {"metric-loss", "metric-approx_kl", "metric-entropy"}
        a, b = plots["metric-approx_kl"], plots["metric-clip_fraction"]
        assert a.region.y == b.region.y and a.region.x < b.region.x  # two columns at 160
        await pilot.press("slash")
        await settle(pilot)
        for ch in "loss entropy":
            await pilot.press("space" if ch == " " else ch)
        await pilot.press("enter")
        await settle(pilot)
        shown = sorted(p.id for p in grid.query("PlotView") if p.display)
        assert shown == ["metric-entropy", "metric-loss"]
        assert "filter 'loss entropy': 2 of 5 metrics" in str(grid.query_one(".metric-grid-status").render())
        await pilot.press("slash", "escape")
        await settle(pilot)
        assert all(p.display for p in grid.query("PlotView"))
    app = make_app(demo_store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run_screen(app, pilot, ids["ppo"])
        plots = list(screen.query_one("#metric-grid").query("PlotView"))
        assert len({p.region.x for p in plots}) == 1  # one column at 80


# --- compare ----------------------------------------------------------------------------------------
def test_seed_band_averages_the_seeds_present_at_each_x():
    from rltui.tui.screens.compare import seed_band

    x_long, x_short = np.arange(50.0), np.arange(12.0)
    curves = [(x_long, x_long), (x_long, x_long + 2), (x_short, x_short + 4)]
    grid = np.array([0.0, 11.0, 20.0, 49.0])
    mean, low, high, count = seed_band(curves, grid, "minmax")
    assert count.tolist() == [3, 3, 2, 2]
    assert mean.tolist() == [2.0, 13.0, 21.0, 50.0]  # (x + x+2 + x+4)/3, then (x + x+2)/2 to the end
    assert low.tolist() == [0.0, 11.0, 20.0, 49.0] and high.tolist() == [4.0, 15.0, 22.0, 51.0]
    mean, low, high, _ = seed_band(curves, grid, "se")
    se3 = np.std([0, 2, 4], ddof=1) / math.sqrt(3)
    assert high[0] - mean[0] == pytest.approx(se3) and high[3] - mean[3] == pytest.approx(np.std([0, 2], ddof=1) / math.sqrt(2))


async def test_grouped_compare_runs_to_the_longest_seed_and_marks_where_one_ends(store):
    from rltui.tui.screens.compare import CompareScreen

    ids = add_seed_group(store)  # four seeds of 50 episodes, one cancelled after 12
    app = make_app(store)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.push_screen(CompareScreen(ids))
        await wait_until(pilot, lambda: app.screen.runs and app.screen.query_one("#compare-plot").data.series)
        screen = app.screen
        await pilot.press(*["minus"] * 12)  # α = 0: the raw means
        await settle(pilot)
        band = screen.query_one("#compare-plot").data.series[0]
        assert "×5 seeds (4 to the end)" in band.label
        assert band.xs[-1] == 49.0  # to the end, not cut at episode 11
        assert band.dropouts == [11.0]
        assert band.ys[-1] == pytest.approx(49 + 1.5)  # seeds 0..3 at episode 49: 49 + mean(0, 1, 2, 3)
        assert band.ys[0] == pytest.approx(0 + 2.0)  # all five at episode 0
        assert "┃" in screen.query_one("#compare-plot").text and "a seed ends" in screen.query_one("#compare-plot").text


async def test_compare_any_metric_and_proxy_against_gold_on_kl(store):
    from rltui.tui.screens.compare import CompareScreen

    ids = add_lm_runs(store)
    app = make_app(store)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.push_screen(CompareScreen(list(ids.values())))
        await wait_until(pilot, lambda: app.screen.runs)
        screen = app.screen
        grid = screen.query_one("#compare-grid")
        await pilot.press("slash", *"reward", "enter")
        await settle(pilot)
        shown = [p for p in grid.query("PlotView") if p.display]
        assert [p.id for p in shown] == ["compare-metric-eval_reward_mean"]
        reward = shown[0].data
        assert {s.label.split()[1] for s in reward.series} == {"lm-lm_ppo", "lm-grpo", "lm-dpo"}  # one axis
        await pilot.press(*["minus"] * 12)  # no smoothing: the closed forms exactly
        assert screen.x_axis == "step"  # no training episodes in these runs
        await pilot.press("x")
        assert screen.x_axis == "kl"
        await pilot.press("x")
        await settle(pilot)
        assert screen.x_axis == "sqrt_kl"
        plot = screen.query_one("#compare-plot")
        proxy = [s for s in plot.data.series if s.role == "proxy"]
        gold = [s for s in plot.data.series if s.role == "gold"]
        assert len(proxy) == len(gold) == 3
        for p, g in zip(proxy, gold):
            assert p.color == g.color and g.dashed and not p.dashed and g.mark_peak
        ppo_gold = next(g for g in gold if g.run_id == ids["lm_ppo"])
        assert ppo_gold.xs[-1] == pytest.approx(4.0)  # √KL runs to 4 on this run
        assert max(ppo_gold.ys) == pytest.approx(GOLD_PEAK)
        assert ppo_gold.xs[ppo_gold.ys.index(max(ppo_gold.ys))] == pytest.approx(GOLD_PEAK_D)
        assert f"gold peak 1 at 2 (run {ids['lm_ppo']})" in plot.data.title
        assert "▲" in plot.text and "peak 1.00" in plot.text
        # The grid's metrics share the √KL axis.
        assert "√KL" in reward.xlabel or "√KL" in grid.query_one("#compare-metric-eval_reward_mean").data.xlabel


# --- system metrics ---------------------------------------------------------------------------------
def test_system_sampler_reads_this_process_from_proc():
    from rltui.runner.sysmetrics import SystemSampler, cpu_seconds, header_text, rss_bytes

    sampler = SystemSampler()
    first = sampler.sample()
    assert "sys/cpu_percent" not in first and first["sys/rss_mb"] > 10  # a Python process holds > 10 MiB
    with open(f"/proc/{os.getpid()}/status") as fh:
        vmrss_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    assert abs(rss_bytes() / 1024 - vmrss_kb) < 2048
    # The sampler's CPU % against the same figure from another clock (process_time: clock_gettime),
    # over a busy spell; the machine's load decides how much of a core this process gets.
    sampler.sample()
    t0, c0 = time.monotonic(), time.process_time()
    while time.monotonic() - t0 < 0.5:
        sum(i * i for i in range(1000))
    busy = sampler.sample()["sys/cpu_percent"]
    expected = 100 * (time.process_time() - c0) / (time.monotonic() - t0)
    assert abs(busy - expected) < 10, (busy, expected)
    time.sleep(0.5)
    idle = sampler.sample()["sys/cpu_percent"]
    assert idle < 10 and cpu_seconds() > 0
    had_torch = "torch" in sys.modules
    assert "sys/gpu_mem_mb" not in sampler.sample() or had_torch  # GPU figures only from a run's own torch
    assert ("torch" in sys.modules) == had_torch  # the sampler never imports torch itself
    assert header_text({"sys/cpu_percent": 97.4, "sys/rss_mb": 2048.0, "sys/gpu_util_percent": 40.0,
                        "sys/gpu_mem_mb": 512.0}) == "CPU 97% · RSS 2.0 GB · GPU 40% 512 MB"


class ReadingOfAGpu:
    """torch.cuda's reading calls answering with a GPU process's figures: a stand-in, in this test
    only, for the device this machine lacks (the product reads the run's own torch.cuda).
    `utilization=None`: NVML missing, which torch reports as a ModuleNotFoundError for pynvml."""

    def __init__(self, allocated: int, reserved: int, utilization: int | None, initialized: bool = True,
                 broken: bool = False) -> None:
        self.allocated, self.reserved, self.util = allocated, reserved, utilization
        self.initialized, self.broken = initialized, broken

    def is_available(self) -> bool:
        return True

    def is_initialized(self) -> bool:
        return self.initialized

    def current_device(self) -> int:
        return 0

    def memory_allocated(self, device: int) -> int:
        if self.broken:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self.allocated

    def memory_reserved(self, device: int) -> int:
        return self.reserved

    def utilization(self, device: int) -> int:
        if self.util is None:
            raise ModuleNotFoundError("pynvml does not seem to be installed or it can't be imported.")
        return self.util


def test_gpu_figures_from_a_cuda_reading(store):
    from rltui.recorder import StoreRecorder
    from rltui.runner.sysmetrics import SystemSampler, cuda_figures, header_text
    from rltui.store.queries import metric_series
    from test_store import make_run

    mib = 1024 * 1024
    assert cuda_figures(ReadingOfAGpu(512 * mib, 1536 * mib, 40)) == {
        "sys/gpu_mem_mb": 512.0, "sys/gpu_reserved_mb": 1536.0, "sys/gpu_util_percent": 40.0}
    assert cuda_figures(ReadingOfAGpu(3 * mib, 20 * mib, None)) == {"sys/gpu_mem_mb": 3.0, "sys/gpu_reserved_mb": 20.0}
    assert cuda_figures(ReadingOfAGpu(1, 1, 1, initialized=False)) == {}  # torch loaded, CUDA never used
    assert cuda_figures(ReadingOfAGpu(1, 1, 1, broken=True)) == {}  # a failing device never breaks a run
    # The heartbeat's path into a real store, and the header's line from what it stored.
    run_id = make_run(store)
    recorder = StoreRecorder(store, run_id)
    SystemSampler(cuda=ReadingOfAGpu(2048 * mib, 4096 * mib, 87)).log_to(recorder)
    recorder.close()
    with store.read() as s:
        latest = {key: metric_series(s, run_id, key)[-1][1]
                  for key in ("sys/gpu_mem_mb", "sys/gpu_reserved_mb", "sys/gpu_util_percent", "sys/rss_mb")}
    assert latest["sys/gpu_mem_mb"] == 2048.0 and latest["sys/gpu_util_percent"] == 87.0
    assert header_text(latest).endswith(" · GPU 87% 2.0 GB")


@pytest.mark.slow
def test_gpu_figures_from_the_real_torch():
    """torch itself, in a fresh process (the lab's tests must not load it): where CUDA is there, the
    figures follow a real allocation; where not, the sampler logs no sys/gpu_* figure."""
    code = (
        "import torch\n"
        "from rltui.runner.sysmetrics import SystemSampler, cuda_figures\n"
        "assert cuda_figures() == {}  # loaded, CUDA not initialised (or not there)\n"
        "if not torch.cuda.is_available():\n"
        "    assert not [k for k in SystemSampler().sample() if k.startswith('sys/gpu')]\n"
        "    print('no cuda')\n"
        "else:\n"
        "    x = torch.empty(64 * 2**20, dtype=torch.uint8, device='cuda')\n"
        "    f = SystemSampler().sample()\n"
        "    assert 64 <= f['sys/gpu_mem_mb'] <= f['sys/gpu_reserved_mb'], f\n"
        "    assert 0 <= f.get('sys/gpu_util_percent', 0) <= 100, f\n"
        "    print('cuda', f)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(("no cuda", "cuda"))


def test_a_worker_run_logs_sys_metrics_on_its_heartbeat(store, db_path):
    """A real run through execute_run with a fast heartbeat: sys/cpu_percent and sys/rss_mb land."""
    from rltui.config import validate_config
    from rltui.runner.execute import create_run, execute_run
    from rltui.store.queries import metric_keys, metric_series

    config = validate_config({"seed": 0, "env": {"id": "ticker", "episode_length": 10},
                              "algo": {"id": "heartbeat_probe", "steps": 20, "step_seconds": 0.02}}, source="test")
    run_id = create_run(store, config)
    assert execute_run(store, run_id, heartbeat_interval=0.05) == "completed"
    with store.read() as s:
        keys = metric_keys(s, run_id)
        rss = metric_series(s, run_id, "sys/rss_mb")
    assert "sys/rss_mb" in keys and "sys/cpu_percent" in keys
    assert all(v > 10 for _, v, _ in rss)


async def test_run_header_and_grid_show_the_system_metrics(store):
    from rltui.tui.demo import SimClockRecorder, add_run

    run_id = add_run(store, "busy", {"id": "cartpole"}, {"id": "ppo"})
    rec = SimClockRecorder(store, run_id, flush_every=1e9)
    for t in range(30):  # what the heartbeat logs: step = seconds since the start
        rec.log(t, **{"sys/cpu_percent": 95.0 + t % 3, "sys/rss_mb": 400.0 + t, "sys/gpu_util_percent": 40.0,
                      "sys/gpu_mem_mb": 1536.0})
    rec.close()
    app = make_app(store)
    async with app.run_test(size=(120, 30)) as pilot:
        screen = await open_run_screen(app, pilot, run_id)
        await wait_until(pilot, lambda: "RSS" in str(screen.query_one("#run-header").render()))
        header = str(screen.query_one("#run-header").render())
        assert "CPU 97% · RSS 429 MB · GPU 40% 1.5 GB" in header  # the latest sample (t = 29)
        assert {"metric-sys_cpu_percent", "metric-sys_rss_mb"} <= {p.id for p in screen.query("PlotView")}
