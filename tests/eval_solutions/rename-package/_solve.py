"""Reference solution for rename-package: run in the task's workspace."""

from pathlib import Path

for path in Path("project").rglob("*"):
    if path.suffix in (".py", ".md", ".toml") and path.name != "CHANGELOG.md":
        text = path.read_text()
        path.write_text(text.replace("fastcart", "quickcart").replace("FastCart", "QuickCart"))
Path("project/src/fastcart").rename("project/src/quickcart")
