"""A passing script's output held against its head worked out by hand: repairs and choice."""

from __future__ import annotations

import json
from pathlib import Path

from test_drafts import Drafter, script_run

from spud.playbooks.expected import Expected, copied, difference

CSV = "sku,price,active\nA1,4.50,yes\nB2,12,no\n"
TASK = (
    "Convert products.csv into products.json: one JSON array with one object per row, keys "
    "sku (a string), price (a number) and active (a boolean: yes is true)."
)
AS_TEXT = (
    "It converts.\n```python\nimport csv, json\nrows = list(csv.DictReader(open('products.csv')))"
    "\njson.dump(rows, open('products.json', 'w'))\n```"
)
TYPED = (
    "It converts with types.\n```python\nimport csv, json\nrows = []\n"
    "for r in csv.DictReader(open('products.csv')):\n"
    "    rows.append({'sku': r['sku'], 'price': float(r['price']), "
    "'active': r['active'].lower() == 'yes'})\njson.dump(rows, open('products.json', 'w'))\n```"
)
HAND = '```json\n{"sku": "A1", "price": 4.5, "active": true}\n```'


def test_a_passing_script_whose_output_differs_from_the_hand_is_told_where(workspace, store):
    (workspace / "products.csv").write_text(CSV)
    model = Drafter([AS_TEXT, HAND, TYPED])
    result, messages = script_run(workspace, store, model, task=TASK, by_hand=True)
    assert result.status == "finished", result.summary
    rows = json.loads((workspace / "products.json").read_text())
    assert rows[0] == {"sku": "A1", "price": 4.5, "active": True}
    repaired = [m for m in messages if m.meta.get("by_hand")]
    assert len(repaired) == 1 and '"price"' in repaired[0].meta["by_hand"]
    hand_ask = model.prompts[1][-1].content
    assert "Do not write a script" in hand_ask and "first element of the JSON array" in hand_ask
    assert "Write one Python 3 script" not in hand_ask and hand_ask.startswith(TASK)
    repair = model.prompts[2][-1].content
    assert '- "price": the script wrote "4.50" (text), by hand 4.5 (a number)' in repair
    assert '- "active": the script wrote "yes" (text), by hand true (a boolean)' in repair
    assert '- "sku"' not in repair  # only what differs
    assert len(model.prompts) == 3  # the repaired output agrees: no more drafts


def test_a_script_that_agrees_with_the_hand_finishes_without_a_repair(workspace, store):
    (workspace / "products.csv").write_text(CSV)
    model = Drafter([TYPED, HAND])
    result, messages = script_run(workspace, store, model, task=TASK, by_hand=True)
    assert result.status == "finished", result.summary
    assert len(model.prompts) == 2  # the draft and the hand's head
    runs = [m for m in messages if m.role == "assistant" and m.tool_calls[0].name == "bash"]
    assert len(runs) == 1


def test_when_no_repair_agrees_with_the_hand_the_first_passing_output_stands(workspace, store):
    (workspace / "products.csv").write_text(CSV)
    wrong_hand = '```json\n[{"sku": "A1", "price": 5, "active": true}]\n```'
    twice, thrice = (TYPED.replace("float(r['price'])", f"{n} * float(r['price'])") for n in (2, 3))
    model = Drafter([TYPED, wrong_hand, twice, AS_TEXT, thrice, TYPED])
    result, _ = script_run(workspace, store, model, task=TASK, by_hand=True)
    assert result.status == "finished", result.summary
    rows = json.loads((workspace / "products.json").read_text())
    assert rows[1]["price"] == 12.0  # the first passing draft's, put back
    assert len(model.prompts) == 5  # three rounds after the first disagreement, then no more


def test_a_repair_sent_back_unchanged_gets_a_fresh_chat_told_what_differed(workspace, store):
    (workspace / "products.csv").write_text(CSV)
    model = Drafter([AS_TEXT, HAND, AS_TEXT, TYPED])
    result, _ = script_run(workspace, store, model, task=TASK, by_hand=True)
    assert result.status == "finished", result.summary
    fresh = model.prompts[3]
    assert (
        len(fresh) == 2 and "An earlier script made products.json differently" in fresh[1].content
    )
    assert '"price": the script wrote "4.50" (text), by hand 4.5 (a number)' in fresh[1].content
    assert json.loads((workspace / "products.json").read_text())[0]["price"] == 4.5


def test_a_script_that_writes_the_inputs_values_in_does_not_agree(workspace, store):
    (workspace / "products.csv").write_text("sku,name,price\nA-100,Espresso cup,4.50\n")
    task = "Convert products.csv into products.json: one JSON array, price a number."
    copy = (
        "It converts.\n```python\nimport json\nrows = [{'sku': 'A-100', 'name': 'Espresso cup', "
        "'price': 4.5}]\njson.dump(rows, open('products.json', 'w'))\n```"
    )
    reader = (
        "It converts.\n```python\nimport csv, json\nrows = [dict(r, price=float(r['price'])) "
        "for r in csv.DictReader(open('products.csv'))]\n"
        "json.dump(rows, open('products.json', 'w'))\n```"
    )
    hand = '```json\n{"sku": "A-100", "name": "Espresso cup", "price": 4.5}\n```'
    model = Drafter([copy, hand, reader])
    result, _ = script_run(workspace, store, model, task=task, by_hand=True)
    assert result.status == "finished", result.summary
    repair = model.prompts[2][-1].content
    assert "writes values of the input into its code ('A-100', 'Espresso cup')" in repair
    assert len(model.prompts) == 3  # the reader agrees with the hand and stands
    assert copied("x = 'kitchen'\ny = 'A-100'", "A-100,kitchen,Mug large", "") == []  # one value
    assert copied("open('logs/a.log')\nopen('logs/b.log')", "logs/a.log\nlogs/b.log", "") == []


def test_a_hand_that_copies_the_tasks_example_lines_checks_nothing(workspace, store):
    (workspace / "sales.csv").write_text("order_id,units\n1,2\n2,5\n")
    task = (
        "Write report.txt from sales.csv in this layout (the numbers are placeholders):\n"
        "```\nSales report\nOrders: 12\nUnits: 345\n```"
    )
    script = (
        "It reports.\n```python\nimport csv\nrows = list(csv.DictReader(open('sales.csv')))\n"
        "units = sum(int(r['units']) for r in rows)\nopen('report.txt', 'w').write("
        "f'Sales report\\nOrders: {len(rows)}\\nUnits: {units}\\n')\n```"
    )
    model = Drafter([script, "```\nSales report\nOrders: 12\n```"])
    result, _ = script_run(workspace, store, model, task=task, by_hand=True)
    assert result.status == "finished", result.summary
    assert len(model.prompts) == 2  # the hand's lines are the task's: no repair asked
    assert (workspace / "report.txt").read_text() == "Sales report\nOrders: 2\nUnits: 7\n"


def test_the_hand_lever_is_off_at_effort_low_and_asks_nothing(workspace, store):
    from spud.eval.harness import agent_harness

    assert agent_harness("spud-hand").by_hand and not agent_harness("spud").by_hand
    (workspace / "products.csv").write_text(CSV)
    model = Drafter([AS_TEXT, HAND, TYPED])
    result, _ = script_run(workspace, store, model, task=TASK, by_hand=False)
    assert result.status == "finished", result.summary
    assert len(model.prompts) == 1


def test_a_hand_reply_that_is_a_script_checks_nothing(workspace, store):
    (workspace / "products.csv").write_text(CSV)
    model = Drafter([AS_TEXT, TYPED])  # asked for the head, the model wrote a script again
    result, _ = script_run(workspace, store, model, task=TASK, by_hand=True)
    assert result.status == "finished", result.summary
    assert len(model.prompts) == 2
    assert json.loads((workspace / "products.json").read_text())[0]["price"] == "4.50"


def test_a_hand_that_writes_the_whole_array_cut_short_gives_its_first_element(workspace, store):
    (workspace / "products.csv").write_text(CSV)
    cut = '```json\n[\n  {"sku": "A1", "price": 4.5, "active": true},\n  {"sku": "B2", "pri'
    model = Drafter([AS_TEXT, cut, TYPED])
    result, _ = script_run(workspace, store, model, task=TASK, by_hand=True)
    assert result.status == "finished", result.summary
    assert '"price": the script wrote "4.50"' in model.prompts[2][-1].content


def test_csv_and_text_heads_are_compared_field_by_field_and_line_by_line(tmp_path: Path):
    (tmp_path / "out.csv").write_text("number,date,total\n2024-031,2024-03-05,12.50\n")
    hand = Expected(
        "out.csv", "csv", [["number", "date", "total"], ["2024-031", "05.03.2024", "12.50"]]
    )
    assert difference(hand, tmp_path) == (
        "- line 2, date: the script wrote '2024-03-05', by hand '05.03.2024'"
    )
    hand.hand[1][1] = "2024-03-05"
    assert difference(hand, tmp_path) == ""
    (tmp_path / "merged.log").write_text("10:00 web-1 INFO up\n10:01 INFO down\n")
    lines = Expected("merged.log", "lines", ["10:00 web-1 INFO up", "10:01 worker INFO down"])
    assert difference(lines, tmp_path) == (
        "- line 2: the script wrote '10:01 INFO down', by hand '10:01 worker INFO down'"
    )
