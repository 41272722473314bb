"""Web drafts in real Chromium: the site read first, then an answer, an output file or a form sent."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from spud.browser_policy import BrowserPolicy
from spud.core.agent import Agent, Limits
from spud.core.messages import Message, ModelReply, Usage
from spud.eval.site import serve
from spud.models.replay import ReplayModel
from spud.playbooks import brief_for
from spud.playbooks.base import named_files
from spud.playbooks.script_draft import given
from spud.playbooks.web_form import form_controls, send_button
from spud.sandbox.bubblewrap import Sandbox, SandboxConfig
from spud.tools.browser.tools import browser_tools, close_browsers
from spud.tools.shell import coding_tools

PAGE = "<html><head><title>{title}</title></head><body><nav>{nav}</nav><main>{main}</main></body></html>"
NAV = "<a href='index.html'>Home</a> <a href='about.html'>About us</a> <a href='tools.html'>Garden tools</a>"
SITE = {
    "index.html": PAGE.format(title="Home", nav=NAV, main="<h1>Welcome</h1>"),
    "about.html": PAGE.format(title="About", nav=NAV, main="<p>Family shop since 1990.</p>"),
    "tools.html": PAGE.format(
        title="Garden tools",
        nav=NAV,
        main="<ul><li><a href='fork.html'>Garden Fork</a></li><li><a href='rake.html'>Rake</a></li></ul>",
    ),
    "fork.html": PAGE.format(
        title="Garden Fork", nav=NAV, main="<h1>Garden Fork</h1><p>In stock: 37 units</p>"
    ),
    "rake.html": PAGE.format(title="Rake", nav=NAV, main="<p>In stock: 5 units</p>"),
    "contact.html": PAGE.format(
        title="Contact",
        nav=NAV,
        main=(
            "<form method='post' action='sent'>"
            "<label for='n'>Your name</label><input id='n' name='name'>"
            "<label for='t'>Topic</label><select id='t' name='topic'><option value=''>Choose"
            "</option><option value='billing'>Billing</option><option value='other'>Other"
            "</option></select>"
            "<input type='checkbox' id='c' name='copy' value='yes'><label for='c'>Send me a copy"
            "</label><input type='checkbox' id='w' name='news' value='yes' checked>"
            "<label for='w'>Newsletter</label><button type='submit'>Send</button></form>"
        ),
    ),
}
SITE["index.html"] = SITE["index.html"].replace(
    "</nav>", " <a href='contact.html'>Contact</a></nav>"
)


class Reader(ReplayModel):
    """The replay model that answers the draft prompts with a function of the prompt."""

    def __init__(self, answer: Callable[[str], str]) -> None:
        super().__init__([])
        self.answer = answer
        self.drafts = True
        self.prompts: list[str] = []

    def chat(
        self,
        messages: list[Message],
        max_tokens: int = 2048,
        temperature: float | None = None,
        until_block: bool = False,
    ) -> ModelReply:
        self.prompts.append(messages[-1].content or "")
        text = self.answer(self.prompts[-1])
        return ModelReply(message=Message(role="assistant", content=text), usage=Usage())


def web_run(ws: Path, store, model: ReplayModel, task: str, site: str):
    sandbox = Sandbox(SandboxConfig(workspace=ws))
    tools = coding_tools(ws, sandbox) + browser_tools(ws, BrowserPolicy(allow_loopback=True))
    brief = brief_for(task.format(site=site), ws, sandbox)
    assert brief is not None and brief.playbook == "web" and brief.opening is not None
    agent = Agent(
        model,
        [t for t in tools if t.name in brief.tools],
        store,
        limits=Limits(max_steps=12),
        verifier=brief.verifier,
        opening=brief.opening,
    )
    try:
        sid = agent.start(task.format(site=site), str(ws), "system" + brief.prompt, brief.context)
        return agent.run(sid), store.messages(sid)
    finally:
        close_browsers(tools)


def called(messages: list[Message]) -> list[str]:
    return [c.name for m in messages if m.role == "assistant" for c in m.tool_calls]


def test_a_look_up_reads_the_linked_pages_and_finishes_with_the_answer(workspace: Path, store):
    model = Reader(lambda p: "The fork's page says 37.\nANSWER: 37 units")
    task = "Open {site}/index.html and tell me how many Garden Fork units are in stock."
    with serve(SITE) as site:
        result, messages = web_run(workspace, store, model, task, site)
    assert result.status == "finished" and result.summary.startswith("37 units")
    assert called(messages)[0] == "browser_pages" and called(messages)[-1] == "finish"
    assert "In stock: 37 units" in model.prompts[0]  # two links away from the start
    # the link most like the task is read first; the model sees the pages in the site's order
    first_batch = next(m for m in messages if m.role == "assistant" and m.tool_calls)
    second = [m for m in messages if m.role == "assistant"][1].tool_calls[0].arguments["urls"]
    assert first_batch.tool_calls[0].arguments["urls"][0].endswith("/index.html")
    assert second[0].endswith("/tools.html")
    assert model.prompts[0].index("## About") < model.prompts[0].index("## Garden tools")


def test_an_output_file_gets_the_content_the_model_copied(workspace: Path, store):
    model = Reader(lambda p: "The fork's page says 37.\n```text\n37\n```")
    task = (
        "Open {site}/index.html and write how many Garden Fork units are in stock into stock.txt."
    )
    with serve(SITE) as site:
        result, messages = web_run(workspace, store, model, task, site)
    assert result.status == "finished", result.summary
    assert (workspace / "stock.txt").read_text() == "37\n"
    assert "checked and passed: output stock.txt" in result.summary
    assert "In stock: 37 units" in model.prompts[0]


def test_a_sum_goes_to_a_script_with_the_values_as_data(workspace: Path, store):
    script = (  # PAGES is defined by Spud before the script runs
        "```python\nunits = [int(line.split(': ')[1].split()[0]) for page in PAGES\n"
        "         for line in page.splitlines() if line.startswith('In stock:')]\n"
        "open('total.txt', 'w').write(str(sum(units)))\n```"
    )
    model = Reader(lambda p: script)
    task = (
        "Open {site}/index.html and add up the units in stock of all garden tools into total.txt."
    )
    with serve(SITE) as site:
        result, messages = web_run(workspace, store, model, task, site)
    assert result.status == "finished", result.summary
    assert (workspace / "total.txt").read_text() == "42"
    assert "PAGES" in model.prompts[0] and "In stock: 5 units" in model.prompts[0]
    assert "bash" in called(messages)


def form_reply(prompt: str, values: dict[str, str]) -> str:
    """`ref: value` lines for the form the prompt lists, the fields given by their names."""
    refs = dict(re.findall(r'^(e\d+): [\w ]+? "([^"]*)"', prompt, re.MULTILINE))
    by_name = {name: ref for ref, name in refs.items()}
    lines = [f"{by_name[name]}: {value}" for name, value in values.items()]
    return "\n".join([*lines, f"submit: {by_name['Send']}"])


def fill_form(prompt: str) -> str:
    values = {"Your name": "Ada Lovelace", "Topic": "Billing", "Send me a copy": "check"}
    return form_reply(prompt, {**values, "Newsletter": "uncheck"})


def test_a_form_is_filled_from_the_models_values_and_sent(workspace: Path, store, tmp_path):
    model = Reader(fill_form)
    task = "Send a message to the shop at {site}/index.html as Ada Lovelace about Billing, with a copy to me and no newsletter."
    log = tmp_path / "site.json"
    with serve(SITE, log=log) as site:
        result, messages = web_run(workspace, store, model, task, site)
    assert result.status == "finished", result.summary
    sent = json.loads(log.read_text())
    assert sent[-1]["path"] == "/sent"
    assert sent[-1]["fields"] == {"name": ["Ada Lovelace"], "topic": ["billing"], "copy": ["yes"]}
    assert (
        "(not checked)" not in model.prompts[0]  # a small model copied the state
        and "(options: Choose (selected), Billing, Other)" in model.prompts[0]
    )
    assert called(messages)[-2:] == ["browser_click", "finish"]


def test_a_reply_without_values_is_asked_again_then_left_to_the_loop(workspace: Path, store):
    model = Reader(lambda p: "I would fill in the form.")
    task = "Send a message to the shop at {site}/index.html as Ada Lovelace about Billing."
    with serve(SITE) as site:
        result, messages = web_run(workspace, store, model, task, site)
    assert len(model.prompts) == 2 and "No field was set" in model.prompts[1]
    assert "finish" not in called(messages)[: called(messages).index("browser_open") + 1]


def test_a_choice_lists_the_candidates_before_the_answer_and_the_form(workspace: Path, store):
    def reply(prompt: str) -> str:
        if "dict literal" in prompt:  # the candidates as data, picked by code
            return (
                "```python\ntools = [{'name': 'Garden Fork', 'stock': 37}, "
                "{'name': 'Rake', 'stock': 5}]\nprint(min(tools, key=lambda t: t['stock']))"
            )
        if prompt.startswith("The script chose this item:") and "ANSWER:" in prompt:
            return "ANSWER: Rake" if "'name': 'Rake'" in prompt else "ANSWER: no item"
        return fill_form(prompt)

    model = Reader(reply)
    task = "Open {site}/index.html and tell me which garden tool has the fewest units in stock."
    with serve(SITE) as site:
        result, messages = web_run(workspace, store, model, task, site)
    assert result.status == "finished" and result.summary.startswith("Rake")
    assert "bash" in called(messages)
    model.prompts.clear()
    task = (
        "Send a message to the shop at {site}/index.html as Ada Lovelace about the cheapest tool."
    )
    with serve(SITE) as site:
        result, messages = web_run(workspace, store, model, task, site)
    assert "dict literal" in model.prompts[0] and "In stock: 5 units" in model.prompts[0]
    assert model.prompts[1].startswith("The script chose this item:\n{'name': 'Rake'")
    assert "The form on" in model.prompts[1] and result.status == "finished"


def test_a_choice_without_a_working_script_is_asked_for_in_words(workspace: Path, store):
    def reply(prompt: str) -> str:
        if "dict literal" in prompt:
            return "```python\nprint(tools[0])\n```"  # a NameError: nothing printed to use
        return "The Rake's page says 5.\nANSWER: Rake"

    model = Reader(reply)
    task = "Open {site}/index.html and tell me which garden tool has the fewest units in stock."
    with serve(SITE) as site:
        result, messages = web_run(workspace, store, model, task, site)
    assert result.status == "finished" and result.summary.startswith("Rake")
    assert "ANSWER:" in model.prompts[1] and called(messages).count("bash") == 1


def test_controls_are_read_from_a_snapshot_with_their_state():
    snapshot = (
        '- textbox "Your name" [e5]\n- combobox "Topic" [e6]: options Choose, Billing (selected)\n'
        '- checkbox "Copy" [checked] [e7]\n- button "Send" [e8]\n- link "Home" [e2]'
    )
    controls = form_controls(snapshot)
    assert list(controls) == ["e5", "e6", "e7", "e8"]
    assert controls["e7"].checked and controls["e7"].call("check") is None
    assert controls["e7"].call("uncheck").name == "browser_click"
    assert controls["e6"].call("Billing").arguments == {"ref": "e6", "option": "Billing"}
    assert controls["e5"].call("Ada").name == "browser_type"


def test_radios_side_by_side_are_one_group_set_by_an_options_label():
    snapshot = (
        '- textbox "Order number" [e14]\n- group "Reason"\n  - radio "Late delivery" [e18]\n'
        '  - text: Late delivery\n  - radio "Damaged item" [e20]\n  - text: Damaged item\n'
        '  - radio "Something else" [checked] [e22]\n- textbox "Message" [e24]\n'
        '- radio "Pick up" [e30]\n- radio "Delivery" [e31]\n- button "Send" [e26]'
    )
    controls = form_controls(snapshot)
    assert list(controls) == ["e14", "e18", "e24", "e30", "e26"]
    reason = controls["e18"]
    assert reason.shown == (
        'e18: radio group "Reason" (options: Late delivery, Damaged item, Something else)'
    )
    assert reason.call("Damaged item").arguments == {"ref": "e20"}
    assert reason.call("a damaged item").arguments == {"ref": "e20"}  # the most words in common
    assert reason.call("Something else") is None  # already checked
    assert reason.call("refund") is None  # no radio is that
    assert controls["e30"].name == "Pick up"  # no group: named by its first radio
    assert controls["e30"].call("Delivery").arguments == {"ref": "e31"}


def test_the_send_button_is_found_however_the_model_names_it():
    controls = form_controls('- textbox "Name" [e5]\n- button "Place order" [e9]')
    assert send_button([("submit", "e9")], controls) == "e9"
    assert send_button([("e9", "submit: e9")], controls) == "e9"  # a 1.5B wrote this
    assert send_button([("e5", "Ada")], controls) == "e9"  # the form's only button
    two = form_controls('- button "Save" [e1]\n- button "Send" [e2]')
    assert send_button([], two) is None


def test_an_email_address_is_not_taken_for_an_output_file():
    assert named_files("for Ada, email ada@example.org, and write notes.txt") == ["notes.txt"]


def test_a_script_that_copies_the_data_it_was_given_runs_on_the_full_data():
    script = 'PAGES = ["cut short"]\n\nx = 1\nprint(len(PAGES), x)\n'
    assert given(script, 'PAGES = ["a", "b"]') == "\nx = 1\nprint(len(PAGES), x)\n"


SHOPS = {
    "index.html": PAGE.format(
        title="Kettles", nav="<a href='a.html'>Alder Home</a> <a href='b.html'>Birch Stores</a>",
        main="<p>Two shops sell the Aurora kettle.</p>",
    ),
    "a.html": PAGE.format(
        title="Kettles | Alder Home", nav="<a href='index.html'>Back</a>",
        main="<table><tr><th>Model</th><th>Price</th></tr><tr><td>Aurora</td><td>39.90</td></tr>"
        "<tr><td>Brisk</td><td>27.50</td></tr></table>",
    ),
    "b.html": PAGE.format(
        title="Kettles | Birch Stores", nav="<a href='index.html'>Back</a>",
        main="<table><tr><th>Model</th><th>Price</th></tr><tr><td>Brisk</td><td>26.95</td></tr>"
        "<tr><td>Aurora</td><td>34.50</td></tr></table>",
    ),
}  # fmt: skip


ONE_SHOP = (
    "```python\nitems = [{'name': 'Aurora', 'price': 39.90}, {'name': 'Brisk', 'price': 27.50}]"
    "\nprint(min([i for i in items if i['name'] == 'Aurora'], key=lambda i: i['price']))\n```"
)


KETTLE = "Open {site}/index.html: which shop sells the Aurora kettle cheaper? Tell me the shop."


def shops_run(workspace: Path, store, reply: Callable[[str], str], task: str = KETTLE):
    """The two-shop site run with a Reader answering by `reply`."""
    model = Reader(reply)
    with serve(SHOPS) as site:
        result, messages = web_run(workspace, store, model, task, site)
    return result, messages, model


def kettle_pick(workspace: Path, store, second: str):
    """The two-shop site, a first pick script with one shop's kettles, then `second` when
    asked for the page it left out; answers name the shop of the item put before them."""

    def reply(prompt: str) -> str:
        if "dict literal" in prompt:
            return ONE_SHOP
        if prompt.startswith("None of your items is from"):
            return second
        if "'price': 34.5" in prompt:
            return "ANSWER: Birch Stores"
        return "ANSWER: Alder Home" if "'price': 39.9" in prompt else "ANSWER: no item"

    return shops_run(workspace, store, reply)


def test_a_pick_that_leaves_out_a_page_of_items_is_asked_for_them(workspace: Path, store):
    both = (
        "```python\nitems = [\n    {'page': 'Kettles | Alder Home', 'name': 'Aurora', 'price': 39.90},\n"
        "    {'page': 'Kettles | Birch Stores', 'name': 'Aurora', 'price': 34.50},\n]\n"
        "print(min(items, key=lambda i: i['price']))\n```"
    )
    result, _, model = kettle_pick(workspace, store, both)
    assert result.status == "finished" and result.summary.startswith("Birch Stores")
    assert "already in the variable ITEMS" in model.prompts[0]  # answered with no script
    assert model.prompts[2].startswith('None of your items is from "Kettles | Birch Stores"')
    assert sum(p.startswith("None of your items") for p in model.prompts) == 1  # once


def test_a_pick_among_table_rows_gets_the_rows_as_data_and_the_chosen_row_as_shown(
    workspace: Path, store
):
    def reply(prompt: str) -> str:
        if "already in the variable ITEMS" in prompt:
            return (
                "```python\nwanted = [i for i in ITEMS if i['model'] == 'Aurora']\n"
                "print(min(wanted, key=lambda i: i['price']))\n```"
            )
        if "Birch Stores'): Model: Aurora; Price: 34.50" in prompt:
            return "ANSWER: Birch Stores, 34.50"
        return "ANSWER: no item"

    result, messages, model = shops_run(workspace, store, reply)
    ask = model.prompts[0]
    assert "{'page': 'Kettles | Birch Stores', 'link': 'Birch Stores', 'model': 'Aurora', " in ask
    assert "'price': 34.50}" in ask and "dict literal" not in ask  # as the page writes it
    assert model.prompts[1].startswith("The script chose this item:\nKettles | Birch Stores")
    assert result.status == "finished" and result.summary.startswith("Birch Stores, 34.50")


def test_a_row_pick_by_chance_is_left_for_the_models_own_items(workspace: Path, store):
    def reply(prompt: str) -> str:
        if "already in the variable ITEMS" in prompt:
            return "```python\nimport random\nprint(random.choice(ITEMS))\n```"
        if "dict literal" in prompt:
            return "```python\nprint({'name': 'Birch Stores', 'price': 34.50})\n```"
        return "ANSWER: Birch Stores" if "'price': 34.5" in prompt else "ANSWER: none"

    result, messages, model = shops_run(workspace, store, reply)
    assert called(messages).count("bash") == 1 and "dict literal" in model.prompts[1]
    assert result.status == "finished" and result.summary.startswith("Birch Stores")


def test_a_row_pick_that_prints_several_rows_is_asked_for_one(workspace: Path, store):
    def reply(prompt: str) -> str:
        if "already in the variable ITEMS" in prompt:  # every Aurora, cheapest first
            return (
                "```python\nwanted = [i for i in ITEMS if i['model'] == 'Aurora']\n"
                "for i in sorted(wanted, key=lambda i: i['price']):\n    print(i)\n```"
            )
        if prompt.startswith("Your script printed 2 items"):
            return "```python\nprint(min(ITEMS, key=lambda i: i['price']))\n```"
        return "ANSWER: " + prompt.split("chose this item:\n", 1)[-1].split(" (", 1)[0]

    task = "Open {site}/index.html: which shop sells the cheapest Aurora kettle? Tell me the shop."
    result, messages, model = shops_run(workspace, store, reply, task)
    assert called(messages).count("bash") == 2
    assert model.prompts[2].startswith("The script chose this item:\nKettles | Birch Stores")
    assert "Model: Brisk; Price: 26.95" in model.prompts[2]
    assert result.status == "finished" and result.summary.startswith("Kettles | Birch Stores")


def test_a_sum_over_tables_gets_their_rows_as_data(workspace: Path, store):
    script = (  # ITEMS is defined by Spud before the script runs
        "```python\ntotal = sum(i['price'] for i in ITEMS if i['model'] == 'Aurora')\n"
        "open('total.txt', 'w').write(f'{total:.2f}')\n```"
    )
    task = "Open {site}/index.html and add up the prices of the Aurora kettles into total.txt."
    result, _, model = shops_run(workspace, store, lambda p: script, task)
    assert result.status == "finished", result.summary
    assert (workspace / "total.txt").read_text() == "74.40"
    ask = model.prompts[0]
    assert "already in the variable ITEMS" in ask and "'model': 'Aurora', 'price': 39.90}" in ask


def test_an_unusable_second_pick_leaves_the_first_ones_item(workspace: Path, store):
    result, messages, _ = kettle_pick(workspace, store, "I listed every kettle above.")
    assert result.status == "finished" and result.summary.startswith("Alder Home")
    assert "bash" in called(messages)  # the first script ran


BRANCHES = {
    "index.html": PAGE.format(
        title="Branches",
        nav="",
        main="".join(
            f"<a href='b{i}.html'>{name} Library</a> "
            for i, name in enumerate(["Riverside", "Old Town", "Hillcrest"], 1)
        ),
    ),
    "b1.html": PAGE.format(title="Riverside", nav="", main="<p>Mon-Sat 9-18, Sun closed</p>"),
    "b2.html": PAGE.format(title="Old Town", nav="", main="<p>Tue-Sun 10-17, Mon closed</p>"),
    "b3.html": PAGE.format(title="Hillcrest", nav="", main="<p>Mon-Fri 9-20</p>"),
}


def test_which_page_fits_is_judged_page_by_page_and_the_one_that_fits_leads(workspace: Path, store):
    def reply(prompt: str) -> str:
        if prompt.endswith("Is this branch open on Sundays? Answer YES or NO."):
            return "YES" if "Tue-Sun" in prompt else "NO"
        if prompt.startswith("Of the pages read, this is the one page that fits the task:"):
            return "ANSWER: " + prompt.split("\n", 2)[1].removeprefix("## ").split(" - ")[0]
        return "ANSWER: Riverside"  # what a 1.5B shown every page at once said

    model = Reader(reply)
    task = "The branches are listed at {site}/index.html. Which branch is open on Sundays?"
    with serve(BRANCHES) as site:
        result, _ = web_run(workspace, store, model, task, site)
    judged = [p for p in model.prompts if p.endswith("Answer YES or NO.")]
    assert len(judged) == 3 and all("## Branches" not in p for p in judged)
    assert result.status == "finished" and result.summary.startswith("Old Town [")
    # two pages that fit, or none: the answer is asked for from all the pages at once
    model = Reader(lambda p: "Yes." if p.endswith("YES or NO.") else "ANSWER: Riverside")
    with serve(BRANCHES) as site:
        result, _ = web_run(workspace, store, model, task, site)
    assert result.summary.startswith("Riverside [") and "ANSWER:" in model.prompts[-1]


def test_a_checkbox_the_task_does_not_mention_is_left_clear(workspace: Path, store, tmp_path):
    def tick_all(prompt: str) -> str:
        ticks = {"Send me a copy": "yes", "Newsletter": "yes"}
        return form_reply(prompt, {"Your name": "Ada Lovelace", **ticks})

    site_pages = dict(SITE)
    site_pages["contact.html"] = site_pages["contact.html"].replace(" checked>", ">")
    task = "Send a message to the shop at {site}/index.html as Ada Lovelace, with a copy to me."
    log = tmp_path / "site.json"
    with serve(site_pages, log=log) as site:
        result, _ = web_run(workspace, store, Reader(tick_all), task, site)
    assert result.status == "finished", result.summary
    sent = json.loads(log.read_text())[-1]["fields"]
    assert sent["copy"] == ["yes"] and "news" not in sent  # the newsletter is not asked for


def test_a_which_question_is_asked_of_one_item():
    from spud.playbooks.task_shapes import yes_no_question

    assert yes_no_question("Which branch is open on Sundays? Check each") == (
        "Is this branch open on Sundays?"
    )
    assert yes_no_question("Tell me which of our engineers speaks Japanese.") == (
        "Does this engineer speak Japanese?"
    )
    assert yes_no_question("which one has a lifetime warranty") == (
        "Does this item have a lifetime warranty?"
    )
    assert yes_no_question("Which of the shops linked from the index delivers to Norway?") == ""
    assert yes_no_question("Tell me the price of the peeler.") == ""


def test_a_pick_that_keeps_a_value_the_task_never_names_is_asked_again(workspace: Path, store):
    def reply(prompt: str) -> str:
        if "already in the variable ITEMS" in prompt:  # the first row's model, as a filter
            return (
                "```python\nwanted = [i for i in ITEMS if i['model'] == 'Aurora']\n"
                "print(min(wanted, key=lambda i: i['price']))\n```"
            )
        if prompt.startswith("Your script keeps only the items whose value is 'Aurora'"):
            return "```python\nprint(min(ITEMS, key=lambda i: i['price']))\n```"
        if "Model: Brisk; Price: 26.95" in prompt:
            return "ANSWER: Birch Stores, Brisk"
        return "ANSWER: no item"

    task = "Open {site}/index.html: which is the cheapest kettle of both shops? Tell me the shop."
    result, _, model = shops_run(workspace, store, reply, task)
    assert result.status == "finished" and result.summary.startswith("Birch Stores"), result.summary
    assert sum(p.startswith("Your script keeps only") for p in model.prompts) == 1


FLAT = (
    "<html><head><title>{name}</title></head><body><main><h1>{name}</h1><dl><dt>Rent</dt>"
    "<dd>{rent} EUR</dd><dt>Balcony</dt><dd>{balcony}</dd></dl></main></body></html>"
)
FLATS = {
    "index.html": "<html><head><title>Flats</title></head><body><main><ul>"
    + "".join(f"<li><a href='flat-{n}.html'>Flat {n}</a></li>" for n in range(1, 5))
    + "</ul></main></body></html>",
    **{
        f"flat-{n}.html": FLAT.format(name=f"Flat {n}", rent=500 + n, balcony=b)
        for n, b in zip(range(1, 5), ["yes", "no", "no", "yes, two"], strict=True)
    },
}


def test_a_how_many_question_is_asked_of_each_page_and_the_yes_pages_counted(
    workspace: Path, store
):
    def reply(prompt: str) -> str:
        if prompt.endswith("Answer YES or NO."):
            return "YES" if "Balcony: yes" in prompt else "NO"
        if "ANSWER: 2" in prompt or "Now write balconies.txt" in prompt:
            return "```\n2 flats\n```"
        return "ANSWER: 4"

    model = Reader(reply)
    task = (
        "The agency at {site}/index.html has four flats. How many of them have a balcony? "
        "Write just the number into balconies.txt."
    )
    with serve(FLATS) as site:
        result, _ = web_run(workspace, store, model, task, site)
    judged = [p for p in model.prompts if p.endswith("Answer YES or NO.")]
    assert len(judged) == 4 and all("Does this one have a balcony?" in p for p in judged)
    assert "Rent: 501 EUR" in judged[0]  # a description list's term beside its description
    assert (workspace / "balconies.txt").read_text() == "2\n"  # just the number, as asked
    assert result.status == "finished", result.summary


def test_a_radio_group_is_one_field_and_the_chosen_option_is_sent(workspace: Path, store, tmp_path):
    site_pages = dict(SITE)
    site_pages["contact.html"] = PAGE.format(
        title="Contact",
        nav=NAV,
        main=(
            "<form method='post' action='sent'><label for='n'>Your name</label>"
            "<input id='n' name='name'><fieldset><legend>Reason</legend>"
            "<input type='radio' id='r1' name='reason' value='late'><label for='r1'>Late delivery"
            "</label><input type='radio' id='r2' name='reason' value='damaged'><label for='r2'>"
            "Damaged item</label></fieldset><button type='submit'>Send</button></form>"
        ),
    )
    model = Reader(lambda p: form_reply(p, {"Your name": "Grace Hopper", "Reason": "Damaged item"}))
    task = "Tell the shop at {site}/index.html through its contact form, as Grace Hopper, that an item came damaged."
    log = tmp_path / "site.json"
    with serve(site_pages, log=log) as site:
        result, _ = web_run(workspace, store, model, task, site)
    assert result.status == "finished", result.summary
    assert 'radio group "Reason" (options: Late delivery, Damaged item)' in model.prompts[-1]
    sent = json.loads(log.read_text())[-1]["fields"]
    assert sent["reason"] == ["damaged"] and sent["name"] == ["Grace Hopper"]


def test_a_radio_the_task_never_names_gives_way_to_the_one_it_does():
    from spud.playbooks.web_form import steered

    snapshot = (
        '- group "Reason"\n  - radio "Late delivery" [e18]\n  - radio "Damaged item" [e20]\n'
        '  - radio "Something else" [e22]'
    )
    reason = form_controls(snapshot)["e18"]
    task = "Tell the shop that order 4471 arrived damaged; reason: a damaged item."
    assert steered(reason, "Late delivery", task) == "Damaged item"
    assert steered(reason, "Damaged item", task) == "Damaged item"
    assert steered(reason, "Something else", "Ask the shop about opening hours.") == (
        "Something else"  # no option is named: the model's stands
    )


def test_the_page_whose_title_the_task_names_is_put_before_the_answer():
    from spud.playbooks.web_rows import named_page

    read = [
        "## Recipes | Green Pot - http://x/index.html\n...",
        "## Red lentil soup | Green Pot - http://x/soup.html\nPreparation: 15 minutes",
        "## Pea and mint salad | Green Pot - http://x/salad.html\nPreparation: 10 minutes",
    ]
    task = "How many minutes does the lentil soup take in all? Write just the number."
    assert named_page(read, task) == read[1]
    assert named_page(read, "How long does a Green Pot recipe take?") is None  # a tie


def test_a_page_the_task_says_no_to_is_not_the_named_one():
    from spud.playbooks.web_rows import named_page

    read = [
        "## Catalogue | Greenthumb Tools - http://x/catalog.html\n...",
        "## Garden Fork | Greenthumb Tools - http://x/item-101.html\nIn stock: 17",
        "## Garden Fork, small | Greenthumb Tools - http://x/item-109.html\nIn stock: 28",
    ]
    task = (
        "Open the page of the Garden Fork (the full-size one, not the small one); write its stock."
    )
    assert named_page(read, task) == read[1]


def test_a_file_reply_without_its_fence_is_taken_by_its_first_line(workspace: Path, store):
    def reply(prompt: str) -> str:
        if prompt.endswith("Answer YES or NO."):
            return "YES" if "Tue-Sun" in prompt else "NO"
        return "Old Town\n\nTue-Sun 10-17, Mon closed"  # the name, then the page it was shown

    task = "The branches are at {site}/index.html. Which branch is open on Sundays? Write its name into sunday.txt."
    with serve(BRANCHES) as site:
        result, _ = web_run(workspace, store, Reader(reply), task, site)
    assert result.status == "finished", result.summary
    assert (workspace / "sunday.txt").read_text() == "Old Town\n"


HOURS = {
    "index.html": PAGE.format(
        title="Museum", nav="<a href='visit.html'>Visit</a>", main="<h1>Hi</h1>"
    ),
    "visit.html": PAGE.format(
        title="Visit",
        nav="",
        main="<table><tr><th>Day</th><th>Opens</th><th>Closes</th></tr><tr><td>Friday</td>"
        "<td>10:00</td><td>18:00</td></tr><tr><td>Saturday</td><td>09:30</td><td>17:30</td></tr>"
        "</table>",
    ),
}


def test_a_look_up_in_a_table_is_a_script_over_its_rows(workspace: Path, store):
    def reply(prompt: str) -> str:
        if "prints the one value the task asks for" in prompt:
            return (
                "```python\nrow = next(i for i in ITEMS if i['day'] == 'Saturday')\n"
                "print(row['closes'])\n```"
            )
        if prompt.startswith("A script looked it up in the tables' rows and printed:\n17:30"):
            return "ANSWER: 17:30"
        return "ANSWER: 09:30"  # what a 1.5B shown the rows said

    task = "At what time does the museum at {site}/index.html close on Saturdays?"
    model = Reader(reply)
    with serve(HOURS) as site:
        result, messages = web_run(workspace, store, model, task, site)
    assert result.status == "finished" and result.summary.startswith("17:30"), result.summary
    assert called(messages).count("bash") == 1
