"""Charts for the auditors' dashboard: figures from the ledger, drawn as inline SVG on the
server (no script, no CDN). Each chart also comes with its numbers as a table."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, IntegerField, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncMonth
from django.utils.html import escape

from audit.models import AuditEvent

COLOURS = ("#0b5cad", "#a40e26", "#0a6b2d", "#8a5a00", "#5b3f9e")


@dataclass
class Chart:
    title: str
    labels: list[str]
    series: dict[str, list[float]] = field(default_factory=dict)
    unit: str = ""

    @property
    def empty(self) -> bool:
        return not self.labels

    def rows(self) -> list[tuple[str, list[float]]]:
        return [(label, [values[i] for values in self.series.values()])
                for i, label in enumerate(self.labels)]


def consent_permit_rate(since: datetime | None = None) -> Chart:
    """Share of choices that said yes, per purpose and month (consent.recorded/withdrawn)."""
    events = AuditEvent.objects.filter(action__in=("consent.recorded", "consent.withdrawn"))
    if since:
        events = events.filter(occurred_at__gte=since)
    counts = (events.annotate(month=TruncMonth("occurred_at"),
                              decision=KeyTextTransform("decision", "details"))
              .values("month", "purpose_code", "decision").annotate(n=Count("id")))
    totals: dict = defaultdict(lambda: [0, 0])
    for row in counts:
        key = (row["month"].strftime("%Y-%m"), row["purpose_code"])
        totals[key][1] += row["n"]
        if row["decision"] == "permit":
            totals[key][0] += row["n"]
    months = sorted({m for m, _ in totals})
    purposes = sorted({p for _, p in totals})
    chart = Chart("Choices that said yes, by purpose (%)", months, unit="%")
    for purpose in purposes:
        chart.series[purpose] = [
            round(100 * totals[(m, purpose)][0] / totals[(m, purpose)][1], 1)
            if totals[(m, purpose)][1] else 0 for m in months]
    return chart


def checks_allowed_denied() -> Chart:
    rows = (AuditEvent.objects.filter(action="consent.checked")
            .annotate(month=TruncMonth("occurred_at"))
            .values("month")
            .annotate(allowed=Sum(Cast(KeyTextTransform("allowed_count", "details"),
                                       IntegerField())),
                      denied=Sum(Cast(KeyTextTransform("denied_count", "details"),
                                      IntegerField())))
            .order_by("month"))
    chart = Chart("Consent checks: studies allowed and denied", [])
    chart.series = {"allowed": [], "denied": []}
    for row in rows:
        chart.labels.append(row["month"].strftime("%Y-%m"))
        chart.series["allowed"].append(row["allowed"] or 0)
        chart.series["denied"].append(row["denied"] or 0)
    return chart


def exports_per_dataset() -> Chart:
    rows = (AuditEvent.objects.filter(action__in=("export.included", "export.excluded"))
            .exclude(dataset_ref="").values("dataset_ref", "action").annotate(n=Count("id")))
    totals: dict = defaultdict(lambda: {"export.included": 0, "export.excluded": 0})
    for row in rows:
        totals[row["dataset_ref"]][row["action"]] = row["n"]
    datasets = sorted(totals, key=lambda d: (len(d), d))
    chart = Chart("Studies exported and excluded, per dataset", [f"dataset {d}"
                                                                 for d in datasets])
    chart.series = {"exported": [totals[d]["export.included"] for d in datasets],
                    "excluded": [totals[d]["export.excluded"] for d in datasets]}
    return chart


def bar_svg(chart: Chart, *, width: int = 640, height: int = 220) -> str:
    """Grouped bars with labels; sized by the largest value."""
    if chart.empty:
        return ""
    left, bottom, top = 40, 40, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    peak = max((v for values in chart.series.values() for v in values), default=0) or 1
    group_w = plot_w / len(chart.labels)
    bar_w = max(2.0, (group_w - 8) / max(1, len(chart.series)))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(chart.title)}" class="chart">',
             f"<title>{escape(chart.title)}</title>",
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" '
             'stroke="#4a5560"/>',
             f'<text x="4" y="{top + 10}" font-size="11">{peak:g}{escape(chart.unit)}</text>']
    for g, label in enumerate(chart.labels):
        x0 = left + g * group_w + 4
        for s, (name, values) in enumerate(chart.series.items()):
            h = plot_h * values[g] / peak
            parts.append(f'<rect x="{x0 + s * bar_w:.1f}" y="{top + plot_h - h:.1f}" '
                         f'width="{bar_w - 1:.1f}" height="{h:.1f}" '
                         f'fill="{COLOURS[s % len(COLOURS)]}"><title>{escape(name)} '
                         f"{escape(label)}: {values[g]:g}{escape(chart.unit)}</title></rect>")
        parts.append(f'<text x="{x0:.1f}" y="{height - bottom + 16}" font-size="11">'
                     f"{escape(label)}</text>")
    for s, name in enumerate(chart.series):
        parts.append(f'<rect x="{left + s * 150}" y="{height - 14}" width="10" height="10" '
                     f'fill="{COLOURS[s % len(COLOURS)]}"/><text x="{left + s * 150 + 14}" '
                     f'y="{height - 5}" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
