"""Text that reads on both themes: WCAG contrast ratios, and colours nudged until they pass AA.

The contrast of two colours is (L1 + 0.05) / (L2 + 0.05), L the relative luminance of the lighter
and the darker one (WCAG 2.x); AA asks 4.5:1 for body text. Textual's light theme keeps the dark
theme's pastel accents (warning #ffa62b is 1.7:1 on its #e0e0e0 background), so the lab's themes
(rltui-dark, rltui-light) set the text colours it uses to ones that pass, and `readable` darkens or
lightens any theme colour drawn as text until it does.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable

from textual.color import Color

AA = 4.5


def luminance(colour: Color) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(colour.r) + 0.7152 * channel(colour.g) + 0.0722 * channel(colour.b)


def ratio(foreground: Color | str, background: Color | str) -> float:
    """The WCAG contrast ratio of `foreground` drawn on `background` (an alpha foreground is blended)."""
    bg = _colour(background)
    fg = bg + _colour(foreground)  # Color.__add__ blends by the foreground's alpha
    hi, lo = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _colour(value: Color | str) -> Color:
    return value if isinstance(value, Color) else Color.parse(value)


@lru_cache(maxsize=256)
def _readable(colour: str, backgrounds: tuple[str, ...], target: float) -> str:
    bgs = [_colour(b) for b in backgrounds]
    c = _colour(colour)
    if all(ratio(c, b) >= target for b in bgs):
        return colour
    # Towards black on light backgrounds, towards white on dark ones, in small steps (hue kept).
    dark_bg = sum(luminance(b) for b in bgs) / len(bgs) < 0.18
    end = Color(255, 255, 255) if dark_bg else Color(0, 0, 0)
    for step in range(1, 21):
        candidate = c.blend(end, step / 20)
        if all(ratio(candidate, b) >= target for b in bgs):
            return candidate.hex
    return end.hex


def readable(colour: str, backgrounds: Iterable[str], target: float = AA) -> str:
    """`colour`, or the nearest shade of it that has `target` contrast on every one of `backgrounds`."""
    bgs = tuple(backgrounds)
    if not bgs or not colour:
        return colour
    return _readable(colour, bgs, target)
