"""Small modal dialogs: confirm, one-line prompt, a column chooser, and the help screen listing a screen's keys.

Their questions carry run names and paths (store text), so every label is plain text (markup=False).
"""

from __future__ import annotations

from typing import Iterable

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, SelectionList, Static


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="question", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", variant="error", id="yes")
                yield Button("No (n)", variant="primary", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class PromptDialog(ModalScreen[str | None]):
    """One line of text (a name, tags, a note). Enter accepts, Escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", placeholder: str = "") -> None:
        super().__init__()
        self.title_text, self.value, self.placeholder = title, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="question", markup=False)
            yield Input(self.value, placeholder=self.placeholder, id="prompt")
            yield Label("enter: save · escape: cancel", classes="hint")

    def on_mount(self) -> None:
        if self.app.is_headless:
            self.query_one("#prompt", Input).cursor_blink = False

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HelpScreen(ModalScreen[None]):
    """The keys of the screen underneath, and what it shows."""

    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def __init__(self, title: str, about: str, keys: Iterable[tuple[str, str]]) -> None:
        super().__init__()
        self.title_text, self.about, self.keys = title, about, list(keys)

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for key, description in self.keys:
            table.add_row(Text(key), Text(description))
        with Vertical(classes="dialog help"):
            yield Label(f"{self.title_text} — keys", classes="question", markup=False)
            with VerticalScroll():
                if self.about:
                    yield Static(self.about, classes="about")
                yield Static(table)
            yield Label("escape: close · ctrl+p: command palette", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)


class ColumnsDialog(ModalScreen[list[str] | None]):
    """Which columns the runs table shows: space ticks, enter keeps, escape leaves them as they were."""

    # enter before the list's own (which would tick the row under the cursor)
    BINDINGS = [Binding("escape", "cancel", "Cancel"), Binding("enter", "keep", "Keep", priority=True)]

    def __init__(self, columns: list[tuple[str, str]], shown: list[str]) -> None:
        super().__init__()
        self.columns, self.shown = columns, shown

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Columns of the runs table", classes="question")
            yield SelectionList[str](*[(Text(label), key, key in self.shown) for key, label in self.columns],
                                     id="columns")
            yield Label("space: show/hide · enter: keep · escape: cancel · none ticked: the compact/wide default",
                        classes="hint")

    def action_keep(self) -> None:
        self.dismiss(list(self.query_one("#columns", SelectionList).selected))

    def action_cancel(self) -> None:
        self.dismiss(None)
