"""Prometheus metrics (prometheus-client) on an HTTP port of their own, `--metrics-listen`.

What is measured, and where (domain code stays pure: the edge and ops report to `Metrics`):

  miaopi_decisions_total{item_code,outcome}   decisions made and recorded (edge/service.py);
                                              a request_id answered from the record is none
  miaopi_decision_seconds                     their latency, Decide call to answer
  miaopi_audit_batch_records                  records per audit commit (the writer's observer)
  miaopi_audit_commit_seconds                 one batch: lock, insert, seal, commit
  miaopi_reloads_total{result}                rule-set reloads, applied / refused, per process
  miaopi_tasks_open{item_code,state}          casework tasks not final, read at scrape
  miaopi_tasks_overdue{item_code,state}       of those, overdue: overdue_promised,
                                              overdue_statutory, supplement_overdue

Labels are item codes, outcomes and states only: never a case's facts or ids.

One process serves one registry. With `--workers N` every worker writes its counters and
histograms into prometheus-client's multiprocess files (PROMETHEUS_MULTIPROC_DIR, a directory
under the state directory emptied when the set starts) and the supervisor serves their sum;
the task gauges are read from the store by whoever serves the scrape, so they are counted once.
"""

from __future__ import annotations

import shutil
import socket
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIServer

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from miaopi_server.audit.chainstore import ChainStore
from miaopi_server.casework.alerts import SUPPLEMENT_OVERDUE, alert_for
from miaopi_server.casework.deadlines import OVERDUE_PROMISED, OVERDUE_STATUTORY
from miaopi_server.casework.model import Task
from miaopi_server.clock import shanghai_today, utc_now

log = structlog.get_logger("miaopi.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Decisions take about 1-50 ms (docs/BENCHMARKS.md); the tail up to a few seconds.
DECISION_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                    0.1, 0.25, 0.5, 1.0, 2.5)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)  # the writer takes at most 512
COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
OVERDUE = frozenset({OVERDUE_PROMISED, OVERDUE_STATUTORY, SUPPLEMENT_OVERDUE})


class Metrics:
    """The metrics one server process records. Cheap on the decision path: one counter and
    one histogram, the counter's child looked up once per (item, outcome)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()  # its own: one per server
        self.decisions = Counter(
            "miaopi_decisions",
            "Decisions made and recorded, by item and outcome",
            ["item_code", "outcome"],
            registry=registry,
        )
        self.decision_seconds = Histogram(
            "miaopi_decision_seconds",
            "Decide latency of the decisions counted in miaopi_decisions_total",
            buckets=DECISION_BUCKETS,
            registry=registry,
        )
        self.batch_records = Histogram(
            "miaopi_audit_batch_records",
            "Records committed together by the audit writer (one group commit)",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "miaopi_audit_commit_seconds",
            "Time to write one audit batch: writers' lock, insert, seal, commit",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        self.reloads = Counter(
            "miaopi_reloads",
            "Rule-set reloads by result (applied, refused), counted by each process",
            ["result"],
            registry=registry,
        )
        self._decided: dict[tuple[str, str], Counter] = {}

    def decided(self, item_code: str, outcome: str, seconds: float) -> None:
        child = self._decided.get((item_code, outcome))
        if child is None:
            child = self._decided[(item_code, outcome)] = self.decisions.labels(item_code, outcome)
        child.inc()
        self.decision_seconds.observe(seconds)

    def audit_batch(self, records: int, seconds: float) -> None:
        """The audit writer's observer (ChainStore.on_batch)."""
        self.batch_records.observe(records)
        self.commit_seconds.observe(seconds)

    def reloaded(self, applied: bool) -> None:
        """The rule-set holder's observer (CatalogHolder.on_reload)."""
        self.reloads.labels("applied" if applied else "refused").inc()


class TaskGauges(Collector):
    """Open and overdue casework tasks by item, read from the store at every scrape (so a
    deadline passing is seen at once, and with --workers counted once)."""

    def __init__(self, open_tasks: Callable[[], list[Task]]):
        self._open_tasks = open_tasks

    def collect(self) -> Iterator[Metric]:
        today = shanghai_today(utc_now())
        opened: Tally[tuple[str, str]] = Tally()
        overdue: Tally[tuple[str, str]] = Tally()
        for task in self._open_tasks():
            opened[(task.item_code, task.state)] += 1
            alert = alert_for(task, today)
            if alert is not None and alert.kind in OVERDUE:
                overdue[(task.item_code, alert.kind)] += 1
        for name, doc, counts in (
            ("miaopi_tasks_open", "Casework tasks not final, by item and state", opened),
            (
                "miaopi_tasks_overdue",
                "Open tasks past a deadline, by item and which (overdue_promised, "
                "overdue_statutory, supplement_overdue)",
                overdue,
            ),
        ):
            family = GaugeMetricFamily(name, doc, labels=["item_code", "state"])
            for (item, state), n in sorted(counts.items()):
                family.add_metric([item, state], n)
            yield family


def split_listen(listen: str) -> tuple[str, int]:
    """HOST:PORT (an IPv6 host in brackets) as (host, port); ValueError otherwise."""
    host, sep, port = listen.rpartition(":")
    # Said without the option's name: --listen, --metrics-listen and --console-listen take it.
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ValueError(f"needs HOST:PORT (a port from 0 to 65535), not {listen!r}")
    return host.strip("[]"), int(port)


class Exporter:
    """The HTTP endpoint: GET any path answers the registry in Prometheus' text format."""

    def __init__(self, listen: str, registry: CollectorRegistry):
        host, port = split_listen(listen)
        try:
            self._httpd: WSGIServer = start_http_server(port, host, registry)[0]
        except (OSError, socket.gaierror) as exc:
            raise OSError(f"cannot serve metrics on {listen}: {exc}") from None
        bound = self._httpd.server_address[1]
        self.listen = f"{listen.rpartition(':')[0]}:{bound}"
        log.info("metrics.started", listen=self.listen)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def serve_process(listen: str, metrics: Metrics, open_tasks: Callable[[], list[Task]]) -> Exporter:
    """A standalone server's endpoint: its own metrics and the task gauges."""
    metrics.registry.register(TaskGauges(open_tasks))
    return Exporter(listen, metrics.registry)


class WorkerSetMetrics:
    """`--workers N --metrics-listen`: the supervisor's side. The directory the workers write
    their metrics into is emptied first (a previous run's totals must not count), and the
    supervisor serves the sum of every worker's files with the task gauges."""

    def __init__(self, listen: str, state_dir: Path, store: ChainStore):
        self.directory = state_dir / "prometheus"
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        registry.register(TaskGauges(store.open_tasks))
        self._exporter = Exporter(listen, registry)
        self._store = store  # closed with the endpoint

    @property
    def worker_env(self) -> dict[str, str]:
        """What a worker's environment needs: prometheus-client picks its multiprocess values
        on import when this is set."""
        return {MULTIPROC_ENV: str(self.directory)}

    def worker_exited(self, pid: int) -> None:
        mark_process_dead(pid, str(self.directory))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._exporter.close()
        self._store.close()
