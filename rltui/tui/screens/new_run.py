"""New run: pick an env and an algorithm, fill a form generated from their parameter schemas.

Every field shows its default, range and description (from the pydantic schema). Each change is
checked with `rltui.config.validate_config` — the very validation the TOML loader uses — and the
message appears under the offending field. Several seeds ("0,1,2" or "0-4") launch one run each.
"""

from __future__ import annotations

import asyncio
import enum
import tomllib
import typing
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Header, Input, Label, Select, Static, Switch

from rltui import registry
from rltui.config import ConfigError, RecordParams, RunConfig, dump_toml, validate_config
from rltui.text import printable
from rltui.tui import launching
from rltui.tui.screens.base import LabScreen
from rltui.tui.widgets.footer import LabFooter

DEVICES = ["auto", "cpu", "cuda", "mps"]
SECTIONS = ("env", "algo", "record")


def parse_seeds(text: str) -> list[int]:
    """'0' → [0]; '0,1,2' → [0, 1, 2]; '0-3' → [0, 1, 2, 3]. Raises ValueError with a message."""
    seeds: list[int] = []
    for part in (text or "0").replace(" ", "").split(","):
        if not part:
            continue
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            lo, hi = int(a), int(b)
            if hi < lo or hi - lo > 999:
                raise ValueError(f"bad seed range {part!r}")
            seeds.extend(range(lo, hi + 1))
        else:
            seeds.append(int(part))
    if not seeds:
        raise ValueError("give at least one seed")
    if any(s < 0 for s in seeds):
        raise ValueError("seeds must be non-negative integers")
    return list(dict.fromkeys(seeds))


def parse_value(raw: str) -> Any:
    """A form value read as TOML (numbers, booleans, lists, quoted strings), else as plain text."""
    raw = raw.strip()
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def format_value(value: Any, nested: bool = False) -> str:
    """A value as one line of TOML, as typed into the form: 0.5, true, [64, 64], "a" inside lists."""
    if value is None:
        return ""
    if isinstance(value, str):
        return dump_toml({"v": value}).split("=", 1)[1].strip() if nested else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):  # inline: dump_toml writes lists over several lines ("[" alone)
        return "[" + ", ".join(format_value(v, nested=True) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {format_value(v, nested=True)}" for k, v in value.items()) + "}"
    return dump_toml({"v": value}).split("=", 1)[1].strip()


def field_range(info: FieldInfo) -> str:
    bounds = []
    for m in info.metadata:
        for attr, sym in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            v = getattr(m, attr, None)
            if v is not None:
                bounds.append(f"{sym} {v}")
    return ", ".join(bounds)


def choices(info: FieldInfo) -> list[Any] | None:
    ann = info.annotation
    if typing.get_origin(ann) is typing.Literal:
        return list(typing.get_args(ann))
    if isinstance(ann, type) and issubclass(ann, enum.Enum):
        return [m.value for m in ann]
    return None


def is_bool(info: FieldInfo) -> bool:
    return info.annotation is bool


def type_name(info: FieldInfo) -> str:
    ann = info.annotation
    return getattr(ann, "__name__", None) or str(ann).replace("typing.", "")


def field_id(section: str, name: str) -> str:
    return f"f-{section}-{name}"


# A new form opens on the seeds' first example, exact value iteration on the 4x4 maze (when installed).
DEFAULT_ENV = "maze"
DEFAULT_ALGO = "value_iteration"


class NewRunScreen(LabScreen):
    HELP_TITLE = "New run"
    HELP_ABOUT = ("Choose an env and an algorithm; the form below is generated from their parameter schemas. "
                  "Values are checked as you type, with the same validation as `rltui run FILE.toml`. "
                  "Seeds: one number, a list (0,1,2) or a range (0-4) — one run per seed.")
    BINDINGS = [
        Binding("ctrl+l", "launch", "Launch"),
        Binding("ctrl+s", "save", "Save TOML"),
        Binding("ctrl+o", "load", "Load TOML"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, initial: dict[str, Any] | None = None, title: str = "New run") -> None:
        super().__init__()
        self.initial = initial or {}
        self.title_text = title
        self.values: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for s in SECTIONS:
            self.values[s] = {k: v for k, v in (self.initial.get(s) or {}).items() if k != "id"}
        self.env_id: str | None = (self.initial.get("env") or {}).get("id")
        self.algo_id: str | None = (self.initial.get("algo") or {}).get("id")
        self.last_error: ConfigError | None = None
        self._building = False
        self._locks: dict[str, asyncio.Lock] = {}

    # --- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        envs = registry.envs()
        if self.env_id not in envs:
            self.env_id = DEFAULT_ENV if DEFAULT_ENV in envs else next(iter(sorted(envs)), None)
        yield Header()
        with VerticalScroll(id="new-run-form"):
            yield Label(self.title_text, classes="section")
            if not envs:
                yield Static("No environments are registered in this install (rltui.schemas.* modules are "
                             "missing), so there is nothing to configure.", id="no-registry")
            yield from self.row("name", "name", Input(self.initial.get("name", ""), placeholder="default: ALGO-ENV",
                                                      id="f-name", compact=True), "a label for the run(s)")
            yield from self.row("seeds", "seed(s)", Input(str(self.initial.get("seed", 0)), id="f-seeds", compact=True),
                                "one run per seed: 0 · 0,1,2 · 0-4")
            device = self.initial.get("device", "auto")
            yield from self.row("device", "device", Select([(d, d) for d in dict.fromkeys(DEVICES + [device])],
                                                         value=device, allow_blank=False, id="f-device", compact=True),
                                "auto picks cuda, then mps, then cpu")
            if envs:
                yield from self.row("env-id", "env", Select(self.env_options(), value=self.env_id,
                                                            allow_blank=False, id="f-env-id", compact=True), "")
                yield from self.row("algo-id", "algorithm", Select(self.algo_options(), allow_blank=True,
                                                                   id="f-algo-id", compact=True), "")
            else:
                yield Static("", id="err-env-id", classes="field-error")
            yield Vertical(id="fields-env")
            yield Vertical(id="fields-algo")
            yield Vertical(id="fields-record")
        yield Static("", id="form-error")
        with Horizontal(id="new-run-buttons"):
            yield Button("Launch ^l", variant="primary", id="launch", compact=True)
            yield Button("Save TOML ^s", id="save", compact=True)
            yield Button("Load TOML ^o", id="load", compact=True)
            yield Button("Back", id="back", compact=True)
        yield LabFooter()

    def row(self, key: str, label: str, widget: Any, help_text: str) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label(label, classes="field-name")
            yield widget
        if help_text:
            yield Static(help_text, classes="field-help", id=f"help-{key}", markup=False)
        yield Static("", classes="field-error", id=f"err-{key}")

    def env_options(self) -> list[tuple[Text, str]]:
        # Text, not str: a Select reads a str prompt as markup ("pip install 'rltui[box2d]'" lost "[box2d]").
        return [(Text(f"{e.id} ({e.kind})" + (f" — {e.summary}" if e.summary else "")), e.id)
                for e in sorted(registry.envs().values(), key=lambda e: e.id)]

    def algo_options(self) -> list[tuple[str, str]]:
        if self.env_id is None:
            return []
        kind = registry.env_spec(self.env_id).kind
        return [(Text(a.id + (f" — {a.summary}" if a.summary else "")), a.id)
                for a in sorted(registry.algos().values(), key=lambda a: a.id) if kind in a.env_kinds]

    async def on_mount(self) -> None:
        self.sub_title = self.title_text
        self.no_blink()
        self.set_algo_options()
        for section in SECTIONS:
            await self.build_fields(section)
        self.validate()

    def set_algo_options(self) -> None:
        if not self.query("#f-algo-id"):
            return
        select = self.query_one("#f-algo-id", Select)
        options = self.algo_options()
        ids = [v for _, v in options]
        if self.algo_id not in ids:
            self.algo_id = DEFAULT_ALGO if DEFAULT_ALGO in ids else (ids[0] if ids else None)
        self._building = True
        select.set_options(options)
        if self.algo_id is not None:
            select.value = self.algo_id
        self._building = False

    def model_for(self, section: str) -> Any:
        if section == "record":
            return RecordParams
        if section == "env" and self.env_id in registry.envs():
            return registry.env_spec(self.env_id).params
        if section == "algo" and self.algo_id in registry.algos():
            return registry.algo_spec(self.algo_id).params
        return None

    async def build_fields(self, section: str) -> None:
        """(Re)generate one section's fields from its schema; old fields are gone before new ones mount."""
        lock = self._locks.setdefault(section, asyncio.Lock())
        async with lock:
            await self._build_fields(section)

    async def _build_fields(self, section: str) -> None:
        box = self.query_one(f"#fields-{section}", Vertical)
        await box.remove_children()
        model = self.model_for(section)
        if model is None:
            return
        title = {"env": f"[env] {self.env_id} — the MDP (γ is part of it)",
                 "algo": f"[algo] {self.algo_id} — hyperparameters",
                 "record": "[record] — which trajectories to keep for replay"}[section]
        widgets: list[Any] = [Label(title, classes="section", markup=False)]
        known = self.values[section]
        for name, info in model.model_fields.items():
            fid = field_id(section, name)
            default = info.default if info.default is not typing.cast(Any, ...) else None
            value = known.get(name, default)
            opts = choices(info)
            if is_bool(info):
                control: Any = Switch(value=bool(value), id=fid)
            elif opts is not None:
                control = Select([(Text(str(o)), o) for o in opts], value=value if value in opts else opts[0],
                                 allow_blank=False, id=fid, compact=True)
            else:
                control = Input(format_value(value) if name in known else "", placeholder=format_value(default),
                                id=fid, compact=True)
            rng = field_range(info)
            bits = [info.description or "", f"default {format_value(default)}" if default is not None else "",
                    rng, type_name(info)]
            widgets.append(Horizontal(Label(name, classes="field-name"), control, classes="form-row"))
            # One line each (cut with …); the focused field's help opens in full (on_descendant_focus).
            widgets.append(Static(" · ".join(b for b in bits if b), classes="field-help", markup=False,
                                  id=f"help-{section}-{name}"))
            widgets.append(Static("", classes="field-error", id=f"err-{section}-{name}"))
        await box.mount_all(widgets)
        self.no_blink()

    def no_blink(self) -> None:
        """Headless (tests, snapshots): a steady cursor, so screenshots are repeatable."""
        if self.lab.is_headless:
            for w in self.query(Input):
                w.cursor_blink = False

    # --- collecting and validating ---------------------------------------------------------------
    def gather(self) -> dict[str, Any]:
        """The form as a config dict, exactly what a TOML file would hold (blank fields: defaults)."""
        data: dict[str, Any] = {}
        name = self.query_one("#f-name", Input).value.strip()
        if name:
            data["name"] = name
        data["device"] = self.query_one("#f-device", Select).value
        for section in SECTIONS:
            table: dict[str, Any] = {}
            if section == "env" and self.env_id:
                table["id"] = self.env_id
            if section == "algo" and self.algo_id:
                table["id"] = self.algo_id
            model = self.model_for(section)
            if model is not None:
                for fname, info in model.model_fields.items():
                    found = self.query(f"#{field_id(section, fname)}")
                    if not found:
                        continue
                    w = found.first()
                    if isinstance(w, Switch):
                        if w.value != info.default:
                            table[fname] = w.value
                    elif isinstance(w, Select):
                        if w.value is not Select.BLANK and w.value != info.default:
                            table[fname] = w.value
                    elif isinstance(w, Input) and w.value.strip():
                        table[fname] = parse_value(w.value)
            if table or section != "record":
                data[section] = table
        return data

    def configs(self) -> list[RunConfig]:
        """One validated RunConfig per seed; raises ConfigError (the loader's own messages)."""
        data = self.gather()
        try:
            seeds = parse_seeds(self.query_one("#f-seeds", Input).value)
        except ValueError as exc:
            raise ConfigError("form", "seed", str(exc)) from None
        out = []
        for seed in seeds:
            d = dict(data, seed=seed)
            if len(seeds) > 1:
                d["name"] = f"{data.get('name') or f'{self.algo_id}-{self.env_id}'}-s{seed}"
            out.append(validate_config(d, source="form"))
        return out

    def validate(self) -> bool:
        for w in self.query(".field-error"):
            w.update("")
            w.remove_class("visible")
        try:
            configs = self.configs()
        except ConfigError as err:
            self.last_error = err
            self.show_error(err)
            return False
        self.last_error = None
        n = len(configs)
        self.query_one("#form-error", Static).update(
            Text(f"✔ valid · {n} run{'s' if n > 1 else ''} ({configs[0].algo_id} on {configs[0].env_id})"))
        self.query_one("#form-error", Static).set_class(False, "error")
        return True

    def show_error(self, err: ConfigError) -> None:
        key = err.key.strip("[]")
        target = {"seed": "err-seeds", "name": "err-name", "device": "err-device", "env.id": "err-env-id",
                  "algo.id": "err-algo-id", "env": "err-env-id", "algo": "err-algo-id"}.get(key)
        if target is None and "." in key:
            section, rest = key.split(".", 1)
            target = f"err-{section}-{rest.split('.')[0]}"
        found = self.query(f"#{target}") if target else []
        if found:
            w = found.first(Static)
            w.update(Text(f"✖ {printable(err.message)}"))  # the message quotes what was typed: text, not markup
            w.add_class("visible")
        self.query_one("#form-error", Static).update(Text(f"✖ {printable(err)}"))

    def on_descendant_focus(self, event: Any) -> None:
        """Open the focused field's help in full; the others stay one line."""
        wid = getattr(event.widget, "id", None) or ""
        help_id = "help-" + wid[2:] if wid.startswith("f-") else None
        for w in self.query(".field-help"):
            w.set_class(w.id == help_id, "open")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.remember(event.input)
        self.validate()

    def on_switch_changed(self, event: Switch.Changed) -> None:
        self.remember(event.switch)
        self.validate()

    def remember(self, widget: Any) -> None:
        wid = widget.id or ""
        for section in SECTIONS:
            prefix = f"f-{section}-"
            if wid.startswith(prefix) and wid != "f-env-id" and wid != "f-algo-id":
                name = wid[len(prefix):]
                if isinstance(widget, Input):
                    if widget.value.strip():
                        self.values[section][name] = parse_value(widget.value)
                    else:
                        self.values[section].pop(name, None)
                else:
                    self.values[section][name] = widget.value

    async def on_select_changed(self, event: Select.Changed) -> None:
        if self._building or event.value != event.select.value:
            return  # a stale event from a programmatic change (set_options, loading a file)
        wid = event.select.id
        if wid == "f-env-id" and event.value is not Select.BLANK and event.value != self.env_id:
            self.env_id = str(event.value)
            self.values["env"] = {}
            self.set_algo_options()
            await self.build_fields("env")
            await self.build_fields("algo")
        elif wid == "f-algo-id" and event.value is not Select.BLANK and event.value != self.algo_id:
            self.algo_id = str(event.value)
            self.values["algo"] = {}
            await self.build_fields("algo")
        else:
            self.remember(event.select)
        self.validate()

    # --- actions ---------------------------------------------------------------------------------
    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"launch": self.action_launch, "save": self.action_save, "load": self.action_load,
         "back": self.action_back}[event.button.id]()

    def action_back(self) -> None:
        self.dismiss(False)

    def action_launch(self) -> None:
        if not self.validate():
            self.notify(str(self.last_error), severity="error", title="Not launched")
            return
        self.launch_worker(self.configs())

    @work(thread=True, exclusive=True, group="launch")
    def launch_worker(self, configs: list[RunConfig]) -> None:
        from rltui.store import StoreError

        try:
            self.lab.store.refuse_writes()  # a read-only store: one toast, not one per seed
        except StoreError as exc:
            self.post(self.lab.notify, str(exc), severity="error", title="Not launched", timeout=10)
            return
        launched = 0
        for config in configs:
            try:
                _, message = launching.launch(self.lab.store, config)
                launched += 1
                self.post(self.lab.notify, message)
            except Exception as exc:  # noqa: BLE001 — show it; the lab stays open
                self.post(self.lab.notify, f"{config.name}: {exc}", severity="error",
                                          title="Launch failed", timeout=10)
        if launched:
            self.post(self.dismiss, True)

    def default_save_path(self) -> Path:
        name = self.query_one("#f-name", Input).value.strip() or f"{self.algo_id}-{self.env_id}"
        return launching.configs_dir(self.lab.store) / f"{name}.toml"

    def action_save(self) -> None:
        from rltui.tui.screens.dialogs import PromptDialog

        if not self.validate():
            self.notify(str(self.last_error), severity="error", title="Not saved")
            return

        def done(path: str | None) -> None:
            if path:
                self.save_to(Path(path).expanduser())

        self.lab.push_screen(PromptDialog("Save the config as TOML to", str(self.default_save_path())), done)

    def save_to(self, path: Path) -> Path:
        config = self.configs()[0]
        data = config.to_dict()
        if len(self.configs()) > 1:
            data["name"] = self.query_one("#f-name", Input).value.strip() or data["name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_toml(data))
        self.notify(f"saved {path}")
        return path

    def action_load(self) -> None:
        from rltui.tui.screens.dialogs import PromptDialog

        async def done(path: str | None) -> None:
            if path:
                await self.load_from(Path(path).expanduser())

        self.lab.push_screen(PromptDialog("Load a run config (TOML) from", str(launching.configs_dir(self.lab.store))
                                          + "/"), done)

    async def load_from(self, path: Path) -> None:
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            self.notify(f"{path}: {exc}", severity="error")
            return
        await self.apply_config(data)
        self.notify(f"loaded {path}")

    async def apply_config(self, data: dict[str, Any]) -> None:
        """Fill the form from a config dict (a TOML file's content or a stored run's config)."""
        self.values = {s: {k: v for k, v in (data.get(s) or {}).items() if k != "id"} for s in SECTIONS}
        env_id = (data.get("env") or {}).get("id")
        if env_id in registry.envs():
            self.env_id = env_id
        self.algo_id = (data.get("algo") or {}).get("id")
        self.query_one("#f-name", Input).value = str(data.get("name", ""))
        self.query_one("#f-seeds", Input).value = str(data.get("seed", 0))
        device = data.get("device", "auto")
        if device in DEVICES:
            self.query_one("#f-device", Select).value = device
        self._building = True
        if self.env_id and self.query("#f-env-id"):
            self.query_one("#f-env-id", Select).value = self.env_id
        self._building = False
        self.set_algo_options()
        for section in SECTIONS:
            await self.build_fields(section)
        self.validate()
