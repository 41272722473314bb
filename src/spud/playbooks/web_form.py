"""A page's form as the web draft sees it: its controls by ref, radio buttons as one group."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from spud.core.messages import ToolCall
from spud.playbooks.web_rows import task_words

CONTROL = re.compile(r'^(\s*)- (\w+)(?: "((?:[^"\\]|\\.)*)")?(.*)$')
FIELD_ROLES = {"textbox", "searchbox", "spinbutton", "combobox", "listbox", "checkbox", "radio"}
CHECK_WORDS = {"check", "checked", "yes", "true", "on", "x", "tick", "ticked", "select"}
WORD = re.compile(r"[a-z0-9]+")
FORM_ASK = (
    "The form on {url}, each field with its ref:\n{controls}\n\nFill it in for the task. Reply "
    "with one line for each field the task gives a value or a choice for, as `ref: value` (a "
    "text field: the text; a list or a radio group: the option's label; a checkbox: yes to "
    "tick it or no to leave it clear, for every checkbox the task mentions), then a last line "
    "`submit: ref` with "
    "the ref of the button that sends the form."
)
FORM_AGAIN = (
    "No field was set: reply with lines like `e5: Ada Lovelace`, using the refs listed above, "
    "and a last line `submit: ref`."
)


@dataclass
class Control:
    """One form control of a page snapshot: its ref, role, name and whether it is checked. A
    radio group is one control (the first radio's ref) whose options are its radios."""

    ref: str
    role: str
    name: str
    checked: bool
    shown: str = ""
    options: list[tuple[str, str, bool]] = field(default_factory=list)  # label, ref, checked

    def call(self, value: str) -> ToolCall | None:
        """The browser call that sets this control to the value (None: already so, or no
        radio of the group is that value)."""
        if self.role in ("combobox", "listbox"):
            return ToolCall(name="browser_select", arguments={"ref": self.ref, "option": value})
        if self.role == "radio group":
            option = _option(self.options, value)
            if option is None or option[2]:
                return None
            return ToolCall(name="browser_click", arguments={"ref": option[1]})
        if self.role in ("checkbox", "radio"):
            wanted = value.lower().strip(".") in CHECK_WORDS
            if wanted == self.checked:
                return None
            return ToolCall(name="browser_click", arguments={"ref": self.ref})
        if self.role == "button":
            return None
        return ToolCall(name="browser_type", arguments={"ref": self.ref, "text": value})


def steered(control: Control, value: str, task: str) -> str:
    """The option of a radio group to set: the model's, unless it shares no word with the task
    while exactly one option does (a 1.5B set "Late delivery" where the task said "reason: a
    damaged item", and "Damaged item" was the next radio)."""
    option = _option(control.options, value) if control.role == "radio group" else None
    if option is None:
        return value
    said = task_words(task)
    fits = [label for label, _, _ in control.options if task_words(label) & said]
    if len(fits) == 1 and option[0] not in fits:
        return fits[0]
    return value


def form_controls(snapshot: str) -> dict[str, Control]:
    """The fields and buttons of a snapshot, by ref, each as the model is shown it: a
    checkbox without its state (shown "(not checked)", a 1.5B gave "unchecked" for a copy the
    task asked for; the click that sets it knows the state). Radios next to each other are
    one group, named by the `group` they are in: shown as three fields, a reason's radios
    got their own labels as values from a 1.5B, and none was clicked."""
    out: dict[str, Control] = {}
    group, within, radios = "", -1, None  # the group the lines are in, its indent; the radios
    for line in snapshot.splitlines():
        m = CONTROL.match(line)
        if not m:
            continue
        role, name, rest = m.group(2), m.group(3) or "", m.group(4)
        if len(m.group(1)) <= within:  # past the group's lines
            group, within, radios = "", -1, None
        if role == "group":
            group, within, radios = name, len(m.group(1)), None
            continue
        if role == "text":
            continue  # a radio's label between radios
        if role not in FIELD_ROLES and role != "button":
            radios = None
            continue
        ref = re.search(r"\[(e\d+)\]", rest)
        if ref is None:
            continue
        checked = "[checked]" in rest
        if role == "radio":
            if radios is None:
                radios = Control(ref.group(1), "radio group", group or name, False)
                out[ref.group(1)] = radios
            radios.options.append((name, ref.group(1), checked))
            labels = ", ".join(label for label, _, _ in radios.options)
            radios.shown = f'{radios.ref}: radio group "{radios.name}" (options: {labels})'
            continue
        radios = None
        options = rest.split(": options ", 1)[1] if ": options " in rest else ""
        shown = f'{ref.group(1)}: {role} "{name}"'
        if options:
            shown += f" (options: {options})"
        out[ref.group(1)] = Control(ref.group(1), role, name, checked, shown)
    return out


def send_button(settings: list[tuple[str, str]], controls: dict[str, Control]) -> str | None:
    """The button that sends the form: the `submit:` line's, a button set to "submit", or the
    form's only button."""
    buttons = [ref for ref, c in controls.items() if c.role == "button"]
    for key, value in settings:
        named = re.search(r"\be\d+\b", value)
        if key == "submit" and named and named.group(0) in controls:
            return named.group(0)
        if key in buttons and "submit" in value.lower():
            return key
    return buttons[0] if len(buttons) == 1 else None


def _option(options: list[tuple[str, str, bool]], value: str) -> tuple[str, str, bool] | None:
    """The radio a value names: by its label, else the one label that shares most words."""
    said = value.strip().strip(".`'\"").lower()
    for option in options:
        if option[0].strip().lower() == said or option[1] == said:
            return option
    words = set(WORD.findall(said))
    scored = sorted(
        ((len(words & set(WORD.findall(o[0].lower()))), o) for o in options),
        key=lambda pair: -pair[0],
    )
    if scored and scored[0][0] and (len(scored) == 1 or scored[0][0] > scored[1][0]):
        return scored[0][1]
    return None
