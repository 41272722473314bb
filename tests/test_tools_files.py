"""The file tools on real files: reads, listings, searches, writes, exact-match edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from spud.core.protocols import Tool
from spud.core.tooling import tool_spec, validate_args
from spud.tools.files import EditFile, ListFiles, ReadFile, Search, WriteFile


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "src" / "app.py").write_text("def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n")
    (root / "README.md").write_text("# Demo\nHello world\n")
    return root


def call(tool: Tool, **arguments: object):
    return tool.run(validate_args(tool, arguments))


def test_tools_follow_the_protocol_and_have_schemas(ws: Path) -> None:
    for cls in (ReadFile, ListFiles, Search, WriteFile, EditFile):
        tool = cls(ws)
        assert isinstance(tool, Tool)
        spec = tool_spec(tool)
        assert spec.parameters["properties"]
        assert all("description" in p for p in spec.parameters["properties"].values())


def test_read_whole_file_with_line_numbers(ws: Path) -> None:
    result = call(ReadFile(ws), path="src/app.py")
    assert result.ok
    assert "src/app.py (5 lines)" in result.output
    assert "     1\tdef add(a, b):" in result.output
    assert "     5\tprint(add(1, 2))" in result.output


def test_read_line_range(ws: Path) -> None:
    result = call(ReadFile(ws), path="src/app.py", start_line=2, end_line=2)
    assert result.ok
    assert "lines 2-2" in result.output
    assert "     2\t    return a + b" in result.output
    assert "def add" not in result.output
    past = call(ReadFile(ws), path="src/app.py", start_line=99)
    assert not past.ok and "past the end" in past.output and "5 lines" in past.output


def test_read_large_file_is_cut_with_a_note(ws: Path) -> None:
    (ws / "big.txt").write_text("".join(f"line {i}\n" for i in range(1, 2001)))
    result = call(ReadFile(ws), path="big.txt")
    assert result.ok
    assert "big.txt (2000 lines)" in result.output
    assert "cut at line 400 of 2000" in result.output
    assert "start_line=401" in result.output
    rest = call(ReadFile(ws), path="big.txt", start_line=401, end_line=410)
    assert "   401\tline 401" in rest.output and "   410\tline 410" in rest.output


def test_read_missing_and_binary(ws: Path) -> None:
    assert not call(ReadFile(ws), path="nope.py").ok
    (ws / "blob.bin").write_bytes(b"\x00\x01\x02" * 10)
    result = call(ReadFile(ws), path="blob.bin")
    assert not result.ok and "binary" in result.output


@pytest.mark.parametrize("path", ["../outside.txt", "src/../../outside.txt", "/etc/passwd"])
def test_path_escape_refused(ws: Path, path: str) -> None:
    (ws.parent / "outside.txt").write_text("secret")
    for tool, extra in (
        (ReadFile(ws), {}),
        (WriteFile(ws), {"content": "x"}),
        (EditFile(ws), {"old": "secret", "new": "x"}),
    ):
        result = call(tool, path=path, **extra)
        assert not result.ok
        assert "outside the workspace" in result.output
    assert (ws.parent / "outside.txt").read_text() == "secret"


def test_symlink_escape_refused(ws: Path) -> None:
    outside = ws.parent / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (ws / "link").symlink_to(outside)
    (ws / "file_link").symlink_to(outside / "secret.txt")
    assert "outside the workspace" in call(ReadFile(ws), path="link/secret.txt").output
    assert "outside the workspace" in call(ReadFile(ws), path="file_link").output
    assert not call(WriteFile(ws), path="link/new.txt", content="x").ok
    assert not (outside / "new.txt").exists()
    listed = call(ListFiles(ws))
    assert "secret" not in listed.output
    assert call(Search(ws), query="secret").data["matches"] == 0


def test_absolute_path_inside_workspace_is_fine(ws: Path) -> None:
    result = call(ReadFile(ws), path=str(ws / "README.md"))
    assert result.ok and "Hello world" in result.output


def test_list_files_skips_tool_folders(ws: Path) -> None:
    (ws / ".git").mkdir()
    (ws / ".git" / "config").write_text("x")
    (ws / "__pycache__").mkdir()
    (ws / "__pycache__" / "app.pyc").write_bytes(b"\0")
    result = call(ListFiles(ws))
    assert result.output.splitlines() == ["README.md", "src/app.py"]
    assert call(ListFiles(ws), pattern="**/*.py").output == "src/app.py"
    assert call(ListFiles(ws), pattern="src").output == "src/app.py"
    assert "no files match" in call(ListFiles(ws), pattern="*.rs").output


def test_list_files_is_capped(ws: Path) -> None:
    (ws / "many").mkdir()
    for i in range(350):
        (ws / "many" / f"f{i:03}.txt").write_text("")
    result = call(ListFiles(ws), pattern="many/*")
    assert len(result.output.splitlines()) == 301
    assert "showing 300 of 350 files" in result.output


def test_search_literal_regex_and_glob(ws: Path) -> None:
    (ws / "blob.bin").write_bytes(b"\x00add(")
    literal = call(Search(ws), query="add(")
    assert literal.output.splitlines() == [
        "src/app.py:1:def add(a, b):",
        "src/app.py:5:print(add(1, 2))",
    ]
    regex = call(Search(ws), query=r"return \w", regex=True)
    assert regex.output == "src/app.py:2:    return a + b"
    assert "no matches" in call(Search(ws), query="Hello", glob="*.py").output
    assert call(Search(ws), query="hello", ignore_case=True, glob="*.md").ok
    bad = call(Search(ws), query="(", regex=True)
    assert not bad.ok and "invalid regex" in bad.output


def test_write_creates_dirs_and_returns_a_diff(ws: Path) -> None:
    created = call(WriteFile(ws), path="pkg/new/mod.py", content="x = 1\n")
    assert created.ok and created.data["created"]
    assert (ws / "pkg/new/mod.py").read_text() == "x = 1\n"
    assert "+x = 1" in created.data["diff"]
    changed = call(WriteFile(ws), path="pkg/new/mod.py", content="x = 2\n")
    assert "wrote pkg/new/mod.py" in changed.output
    assert "-x = 1" in changed.data["diff"] and "+x = 2" in changed.data["diff"]


def test_write_refuses_to_overwrite_a_binary_office_file(ws: Path) -> None:
    book = ws / "budget.xlsx"
    book.write_bytes(b"PK\x03\x04 a workbook")
    refused = call(WriteFile(ws), path="budget.xlsx", content="A1,B1\n1,2\n")
    assert not refused.ok and "sheet_write" in refused.output
    assert book.read_bytes() == b"PK\x03\x04 a workbook"
    assert "docx_write" in call(WriteFile(ws), path="new.DOCX", content="text").output
    assert not (ws / "new.DOCX").exists()


def test_edit_replaces_exactly_once(ws: Path) -> None:
    result = call(EditFile(ws), path="src/app.py", old="return a + b", new="return a - b")
    assert result.ok, result.output
    assert "line 2" in result.output
    assert "-    return a + b" in result.data["diff"]
    assert "+    return a - b" in result.data["diff"]
    assert (ws / "src/app.py").read_text().splitlines()[1] == "    return a - b"


def test_ambiguous_edit_refused_with_match_count(ws: Path) -> None:
    text = "x = 1\ny = 2\nx = 1\nz = 3\nx = 1\n"
    (ws / "dup.py").write_text(text)
    result = call(EditFile(ws), path="dup.py", old="x = 1", new="x = 9")
    assert not result.ok
    assert "3 times" in result.output
    assert "lines 1, 3, 5" in result.output
    assert "more surrounding lines" in result.output
    assert (ws / "dup.py").read_text() == text


def test_missing_match_refused_with_closest_lines(ws: Path) -> None:
    before = (ws / "src/app.py").read_text()
    result = call(EditFile(ws), path="src/app.py", old="  return a+b", new="return 0")
    assert not result.ok
    assert "not found" in result.output
    assert "     2\t    return a + b" in result.output
    assert (ws / "src/app.py").read_text() == before


def test_writing_a_file_back_unchanged_says_so(ws: Path) -> None:
    text = (ws / "src" / "app.py").read_text()
    res = call(WriteFile(ws), path="src/app.py", content=text)
    assert res.ok and res.output.startswith("src/app.py unchanged: it already holds exactly")
    res = call(WriteFile(ws), path="src/app.py", content=text.replace("a + b", "b + a"))
    assert res.ok and res.output.startswith("wrote src/app.py (5 lines, +1 -1)")
