"""The nightly sleep: a daemon thread that runs sleep for every owner at a set local time."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, time, timedelta

from spud.config import Settings

log = logging.getLogger(__name__)
Owner = tuple[str, str, list[str] | None]  # user id, org id, their session ids (None: all)


def seconds_until(at: time, now: datetime) -> float:
    """Seconds from now to the next time the clock shows `at` (tomorrow if it has passed)."""
    target = datetime.combine(now.date(), at, tzinfo=now.tzinfo)
    if target <= now:
        target += timedelta(days=1)
    return (target - now).total_seconds()


class Nightly:
    """Runs job() every day at `at`; a failing job is logged and tried again the next night."""

    def __init__(
        self,
        job: Callable[[], object],
        at: time = time(3, 0),
        clock: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self.job, self.at, self.clock = job, at, clock
        self.stopped = threading.Event()
        self.runs = 0
        self.thread = threading.Thread(target=self._loop, name="spud-nightly-sleep", daemon=True)

    def start(self) -> Nightly:
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopped.set()
        self.thread.join(timeout)

    def _loop(self) -> None:
        while not self.stopped.wait(seconds_until(self.at, self.clock())):
            try:
                self.job()
            except Exception:  # the server must outlive a bad night
                log.exception("nightly sleep failed")
            self.runs += 1


def sleep_owners(settings: Settings, owners: Iterable[Owner]) -> None:
    """Sleep once for each owner, on the configured model (loaded once)."""
    from spud.memory.service import MemoryService
    from spud.models.loader import load_model

    svc = MemoryService(settings)
    model = None
    for user_id, org_id, session_ids in owners:
        model = model or load_model(settings.model, settings)
        report = svc.sleep(user_id, org_id, model, session_ids)
        log.info(
            "slept for %s/%s: %d facts, %d episodes, %d skills",
            user_id,
            org_id,
            len(report.facts),
            len(report.episodes),
            len(report.skills),
        )
    svc.store.close()


def start_nightly_sleep(
    settings: Settings,
    owners: Callable[[], Iterable[Owner]] = lambda: [("local", "local", None)],
    at: time = time(3, 0),
) -> Nightly:
    """Start the nightly sleep for the server; owners() is asked each night who to sleep for."""
    return Nightly(lambda: sleep_owners(settings, owners()), at).start()
