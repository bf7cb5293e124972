"""`MetricsSnapshot`: Prometheus metrics read back, for assertions in tests."""

from __future__ import annotations

import attrs
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


@attrs.frozen
class MetricsSnapshot:
    """The samples of one exposition in the Prometheus text format, parsed by
    prometheus-client's own parser.

    ::

        metrics = await faults.metrics()            # the server's GET /metrics
        assert metrics.value("resilience_server_requests_total",
                             route="/msg", status="503") == 2
        client_side = MetricsSnapshot.of(client_metrics.registry)

    Sample names are as exposed: a counter's end in ``_total``, a histogram's in
    ``_bucket``, ``_count`` and ``_sum``.
    """

    samples: tuple[Sample, ...]

    @classmethod
    def parse(cls, text: str) -> MetricsSnapshot:
        """The samples of ``text`` (a ``GET /metrics`` body, say)."""
        return cls(
            tuple(
                sample
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            )
        )

    @classmethod
    def of(cls, registry: CollectorRegistry) -> MetricsSnapshot:
        """The samples of ``registry`` now (a `ClientMetrics`' ``registry``)."""
        return cls.parse(generate_latest(registry).decode())

    def value(self, name: str, **labels: str) -> float:
        """The sum of the samples named ``name`` whose labels include ``labels``
        (0.0 if there is none): ``value("..._requests_total", route="/msg")``
        adds up every status and method of that route."""
        return sum(
            (sample.value for sample in self.matching(name, **labels)), start=0.0
        )

    def matching(self, name: str, **labels: str) -> list[Sample]:
        """The samples named ``name`` whose labels include ``labels``."""
        wanted = labels.items()
        return [
            sample
            for sample in self.samples
            if sample.name == name and wanted <= sample.labels.items()
        ]

    def label_values(self, name: str, label: str) -> set[str]:
        """Every value label ``label`` takes in the samples named ``name``."""
        return {
            sample.labels[label]
            for sample in self.matching(name)
            if label in sample.labels
        }
