"""Sweeps: many ordinary runs over a hyperparameter space (spec, trials, driver, the Ray engine).

Nothing here is imported by the lab's TUI but `trials` (plain SQL); the driver alone imports Optuna,
and the Ray engine alone imports Ray.
"""
