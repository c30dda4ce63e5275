"""Notifications: an observer of one run that tells `[[dag.notify]]` of its failure, success or
a task's retry, by webhook (a JSON POST), email (SMTP) or a local command.

It never holds the run back: it takes each event at once and delivers in tasks of its own,
each with `retries` more tries after a failure (waiting 2 s, then 4 s, 8 s...) and its own
`timeout` per try. Every try is appended to the run's `notifications.jsonl` (when, which event,
which channel, which try, whether it went, the error, masked). A notification that cannot go
(a secret missing, a server down) is recorded and changes nothing for the run.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import subprocess
from collections.abc import Mapping
from pathlib import Path

import attrs
import trio

from pit.actors.masking import Masker
from pit.actors.orphans import own_child
from pit.clock import Clock
from pit.connectors.notify import post_json, send_email
from pit.connectors.target import ConnectorError
from pit.messages.run import RunEnded, RunEvent, RunRecord, RunStarted, TaskUpdated
from pit.spec.dag import DagSpec
from pit.spec.durations import format_duration
from pit.spec.secrets import SecretNotFound, Secrets
from pit.spec.states import RunState, TaskState
from pit.spec.tables import NotifySpec

NOTIFICATIONS_FILE = "notifications.jsonl"
FIRST_RETRY = 2.0
"""Seconds before the first retry of a notification; each next waits twice as long."""
LOG_TAIL = 20
"""Lines of a failed task's log a notification carries."""
log = logging.getLogger("pit.notify")


@attrs.define(kw_only=True)
class Notifier:
    dag: DagSpec
    run_dir: Path
    snapshot: Path
    """The run's project snapshot: where a command notification runs."""
    secrets: Secrets | None
    clock: Clock
    env: Mapping[str, str]
    dashboard_url: str | None = None
    _masker: Masker = attrs.field(init=False)
    _retried: set[tuple[str, int]] = attrs.field(init=False, factory=set)

    def __attrs_post_init__(self) -> None:
        self._masker = Masker(self.secrets.values() if self.secrets else ())

    async def run(self, events: trio.MemoryReceiveChannel[RunEvent]) -> None:
        """Take the run's events until it ends, delivering what `[[dag.notify]]` asks for."""
        sla = trio.CancelScope()
        async with events, trio.open_nursery() as deliveries:
            async for event in events:
                if isinstance(event, RunStarted) and self.dag.sla is not None:
                    deliveries.start_soon(self._watch_sla, event.record, sla, deliveries)
                if isinstance(event, RunEnded):
                    sla.cancel()
                for name, body in self._notices(event):
                    self._notify(name, body, deliveries)

    def _notify(self, name: str, body: dict[str, object], deliveries: trio.Nursery) -> None:
        for spec in self.dag.notify:
            if name in spec.on:
                deliveries.start_soon(self._deliver, spec, name, body)

    async def _watch_sla(
        self, record: RunRecord, scope: trio.CancelScope, deliveries: trio.Nursery
    ) -> None:
        """`sla_miss` once, if the run has not ended `sla` after its scheduled time (or its
        start, for a run not scheduled)."""
        assert self.dag.sla is not None
        since = record.scheduled_time or record.started_at or self.clock.now()
        if record.trigger in ("catchup", "backfill") and record.started_at is not None:
            since = max(since, record.started_at)  # an old fire run now: from its start
        with scope:
            # Re-read the wall clock at least every minute: it may jump while trio's does not.
            while (left := (since - self.clock.now()).total_seconds() + self.dag.sla) > 0:  # noqa: ASYNC110
                await trio.sleep(min(left, 60.0))
            body = self._body("sla_miss", record.run_id, RunState.RUNNING)
            body["sla"] = format_duration(self.dag.sla)
            self._notify("sla_miss", body, deliveries)

    def _notices(self, event: RunEvent) -> list[tuple[str, dict[str, object]]]:
        match event:
            case TaskUpdated(run_id=run_id, record=task) if task.retry_in is not None:
                if (task.name, task.attempts) in self._retried:
                    return []
                self._retried.add((task.name, task.attempts))
                body = self._body("retry", run_id, RunState.RUNNING)
                body |= {"task": task.name, "attempt": task.attempts, "error": task.error}
                return [("retry", body)]
            case RunEnded(record=record) if record.state is RunState.SUCCESS:
                return [("success", self._ended("success", record))]
            case RunEnded(record=record) if record.state is RunState.FAILED:
                return [("failure", self._ended("failure", record))]
        return []

    def _body(self, event: str, run_id: str, state: RunState) -> dict[str, object]:
        body: dict[str, object] = {
            "event": event,
            "dag": self.dag.name,
            "run_id": run_id,
            "state": state.value,
        }
        if self.dashboard_url:
            body["link"] = f"{self.dashboard_url.rstrip('/')}/runs/{run_id}"
        return body

    def _ended(self, event: str, record: RunRecord) -> dict[str, object]:
        failed = [t.name for t in record.tasks if t.state is TaskState.FAILED]
        body = self._body(event, record.run_id, record.state)
        body |= {
            "trigger": record.trigger,
            "scheduled_time": record.scheduled_time.isoformat() if record.scheduled_time else None,
            "error": record.error,
            "failed_tasks": failed,
            "log_tail": {name: self._tail(name) for name in failed},
        }
        return body

    def _tail(self, task: str) -> list[str]:
        try:
            with open(self.run_dir / "logs" / f"{task}.log", "rb") as file:
                file.seek(max(0, os.fstat(file.fileno()).st_size - 16384))
                lines = file.read().decode(errors="replace").splitlines()
        except OSError:
            return []
        return [self._masker.mask(line) for line in lines[-LOG_TAIL:]]

    async def _deliver(self, spec: NotifySpec, event: str, body: dict[str, object]) -> None:
        for attempt in range(1, spec.retries + 2):
            error = None
            final = False
            try:
                with trio.fail_after(spec.timeout):
                    await self._send(spec, body)
            except SecretNotFound as exc:  # trying again finds no secret either
                error, final = str(exc), True
            except (ConnectorError, OSError) as exc:
                error = str(exc)
            except trio.TooSlowError:
                error = f"no answer within {spec.timeout:g}s"
            except Exception as exc:  # a pit bug: this notification's, never the run's
                log.exception("%s: %s notification failed (a pit bug)", self.dag.name, event)
                error, final = f"internal error: {type(exc).__name__}: {exc}", True
            await self._record(spec, event, attempt, error)
            if error is None or final:
                return
            if attempt <= spec.retries:
                await trio.sleep(FIRST_RETRY * 2 ** (attempt - 1))

    async def _send(self, spec: NotifySpec, body: dict[str, object]) -> None:
        match spec.channel:
            case "webhook":
                url = spec.url or self._plain(spec.url_secret or "")
                await trio.to_thread.run_sync(
                    post_json, url, body, spec.timeout, abandon_on_cancel=True
                )
            case "email":
                server = self._structured(spec.secret or "")
                subject = f"[pit] {self.dag.name} {body['event']}: {body['run_id']}"
                text = json.dumps(body, indent=2)
                send = functools.partial(send_email, server, spec.to, subject, text, spec.timeout)
                await trio.to_thread.run_sync(send, abandon_on_cancel=True)
            case "command":
                await self._command(spec, body)

    async def _command(self, spec: NotifySpec, body: dict[str, object]) -> None:
        argv = shlex.split(spec.command or "")
        env = {
            **self.env,
            "PIT_NOTIFY_EVENT": str(body["event"]),
            "PIT_RUN_ID": str(body["run_id"]),
            "PIT_DAG_NAME": self.dag.name,
            "PIT_RUN_STATE": str(body["state"]),
            "PIT_RUN_DIR": str(self.run_dir),
            "PIT_NOTIFICATION": json.dumps(body),
        }
        try:
            process = await trio.lowlevel.open_process(
                argv,
                cwd=self.snapshot,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise ConnectorError(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        # pit's own child, which it waits for: never taken for an escapee of the run (it
        # carries PIT_RUN_ID) and killed or reaped by the run's sweep.
        stderr = process.stderr
        assert stderr is not None
        with own_child(process.pid):
            try:
                said = b""
                while chunk := await stderr.receive_some():
                    said = (said + chunk)[-4096:]
                code = await process.wait()
            finally:
                if process.returncode is None:  # cut short (its timeout): it must not linger
                    process.kill()
                    with trio.CancelScope(shield=True):
                        await process.wait()
                await stderr.aclose()
        if code != 0:
            last = said.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise ConnectorError(f"{argv[0]} exited {code}: {last[0]}".rstrip(": "))

    def _plain(self, name: str) -> str:
        value = self._secrets().find(self.dag.name, name)
        if not isinstance(value, str):
            raise SecretNotFound(f"secret '{name}' is structured: a webhook URL is a plain secret")
        return value

    def _structured(self, name: str) -> Mapping[str, str]:
        value = self._secrets().find(self.dag.name, name)
        if isinstance(value, str):
            raise SecretNotFound(f"secret '{name}' is plain: an SMTP server is structured")
        return value

    def _secrets(self) -> Secrets:
        if self.secrets is None:
            raise SecretNotFound("no secrets file to read the notification's secret from")
        return self.secrets

    async def _record(self, spec: NotifySpec, event: str, attempt: int, error: str | None) -> None:
        entry = {
            "at": self.clock.now().isoformat(timespec="milliseconds"),
            "event": event,
            "channel": spec.channel,
            "attempt": attempt,
            "ok": error is None,
            "error": self._masker.mask(error) if error else None,
        }
        if error:
            log.warning(
                "%s: %s notification (%s) failed: %s",
                self.dag.name,
                event,
                spec.channel,
                entry["error"],
            )
        line = json.dumps(entry) + "\n"
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_append, self.run_dir / NOTIFICATIONS_FILE, line)


def _append(path: Path, line: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as file:
            file.write(line)
    except OSError as exc:  # the run folder gone, a full disk: the log line above is all
        log.warning("cannot record a notification in %s: %s", path, exc)
