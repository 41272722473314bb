"""A to-do list: tasks with a title, an optional due date and tags."""

from dataclasses import dataclass, field
from datetime import date


@dataclass
class Task:
    id: int
    title: str
    due: date | None = None
    tags: list[str] = field(default_factory=list)
    done: bool = False


class TodoList:
    """Tasks in the order they were added; ids count up from 1."""

    def __init__(self):
        self._tasks: dict[int, Task] = {}
        self._next_id = 1

    def add(self, title, due=None, tags=()):
        """Add a task and return it. Tags are stored lowercased, without duplicates."""
        if not title.strip():
            raise ValueError("a task needs a title")
        clean = []
        for tag in tags:
            if tag.lower() not in clean:
                clean.append(tag.lower())
        task = Task(self._next_id, title.strip(), due, clean)
        self._tasks[task.id] = task
        self._next_id += 1
        return task

    def get(self, task_id):
        """The task with this id (KeyError if there is none)."""
        return self._tasks[task_id]

    def __len__(self):
        return len(self._tasks)

    def complete(self, task_id):
        task = self._tasks[task_id]
        task.done = True
        return task

    def pending(self):
        return [t for t in self._tasks.values() if not t.done]

    def done(self):
        return [t for t in self._tasks.values() if t.done]

    def by_tag(self, tag):
        return [t for t in self._tasks.values() if tag.lower() in t.tags]

    def overdue(self, today):
        late = [t for t in self.pending() if t.due is not None and t.due < today]
        return sorted(late, key=lambda t: t.due)

    def rename_tag(self, old, new):
        changed = 0
        for task in self._tasks.values():
            if old.lower() in task.tags:
                tags = [new if tag == old.lower() else tag for tag in task.tags]
                task.tags = [tag for i, tag in enumerate(tags) if tag not in tags[:i]]
                changed += 1
        return changed

    def to_markdown(self):
        lines = []
        for t in self._tasks.values():
            line = f"- [{'x' if t.done else ' '}] {t.title}"
            if t.due:
                line += f" (due {t.due.isoformat()})"
            lines += [line + "".join(f" #{tag}" for tag in t.tags)]
        return "\n".join(lines)
