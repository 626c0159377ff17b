"""Charts for the auditors' dashboard: figures from the ledger, drawn as inline SVG on the
server (no script, no CDN). Each chart also comes with its numbers as a table."""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, IntegerField, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, TruncMonth
from django.utils.html import escape

from audit.models import AuditEvent

# Okabe and Ito's palette, which readers with any common colour-vision deficiency tell
# apart; no red, which readers take as "bad" and which no ordinary purpose should wear.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000")


@dataclass
class Chart:
    title: str
    labels: list[str]
    series: dict[str, list[float]] = field(default_factory=dict)
    unit: str = ""
    value_axis: str = "studies"
    category_axis: str = "month"

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
    chart = Chart("Choices that said yes, by purpose (%)", months, unit="%",
                  value_axis="choices that said yes")
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
    chart = Chart("Consent checks: studies allowed and denied", [], value_axis="studies checked")
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
                                                                 for d in datasets],
                  value_axis="studies", category_axis="dataset")
    chart.series = {"exported": [totals[d]["export.included"] for d in datasets],
                    "excluded": [totals[d]["export.excluded"] for d in datasets]}
    return chart


def nice_ticks(peak: float, count: int = 4) -> list[float]:
    """Round tick values from 0 to at least ``peak``: 0, 25, 50, 75, 100 or 0, 2, 4, 6 …"""
    if peak <= 0:
        return [0, 1]
    raw = peak / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    # Counts are whole: no ticks at 0.5 of a study.
    step = max(step, 1) if float(peak).is_integer() else step
    return [round(i * step, 6) for i in range(math.ceil(peak / step) + 1)]


def bar_svg(chart: Chart, *, width: int = 720, height: int = 300) -> str:
    """Grouped bars with a labelled value axis (ticks and grid lines), a labelled category
    axis, and a legend, in colours that colour-blind readers tell apart."""
    if chart.empty:
        return ""
    legend_per_row = 3
    legend_rows = math.ceil(len(chart.series) / legend_per_row)
    left, right, top = 64, 12, 12
    bottom = 48 + 18 * legend_rows
    plot_w, plot_h = width - left - right, height - bottom - top
    peak = max((v for values in chart.series.values() for v in values), default=0)
    ticks = nice_ticks(100 if chart.unit == "%" else peak)
    scale_max = ticks[-1] or 1
    group_w = plot_w / len(chart.labels)
    bar_w = max(2.0, (group_w - 8) / max(1, len(chart.series)))
    axis_y = top + plot_h
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(chart.title)}" class="chart" '
             'font-family="system-ui, sans-serif">',
             f"<title>{escape(chart.title)}</title>"]
    for tick in ticks:  # value axis: grid line and label per tick
        y = axis_y - plot_h * tick / scale_max
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" '
                     f'stroke="{"#4a5560" if tick == 0 else "#d0d7de"}"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="12" text-anchor="end" '
                     f'fill="#1b1f24">{tick:g}{escape(chart.unit)}</text>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{axis_y}" stroke="#4a5560"/>')
    parts.append(f'<text transform="translate(14 {top + plot_h / 2:.1f}) rotate(-90)" '
                 f'font-size="12" text-anchor="middle" fill="#1b1f24">'
                 f"{escape(chart.value_axis)}</text>")
    for g, label in enumerate(chart.labels):
        x0 = left + g * group_w + 4
        for s, (name, values) in enumerate(chart.series.items()):
            h = plot_h * values[g] / scale_max
            parts.append(f'<rect x="{x0 + s * bar_w:.1f}" y="{axis_y - h:.1f}" '
                         f'width="{bar_w - 1:.1f}" height="{h:.1f}" '
                         f'fill="{COLOURS[s % len(COLOURS)]}"><title>{escape(name)} '
                         f"{escape(label)}: {values[g]:g}{escape(chart.unit)}</title></rect>")
        parts.append(f'<text x="{left + (g + .5) * group_w:.1f}" y="{axis_y + 16}" '
                     f'font-size="12" text-anchor="middle" fill="#1b1f24">'
                     f"{escape(label)}</text>")
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{axis_y + 34}" font-size="12" '
                 f'text-anchor="middle" fill="#1b1f24">{escape(chart.category_axis)}</text>')
    for s, name in enumerate(chart.series):
        row, col = divmod(s, legend_per_row)
        x, y = left + col * 210, axis_y + 44 + row * 18
        parts.append(f'<rect x="{x}" y="{y}" width="12" height="12" '
                     f'fill="{COLOURS[s % len(COLOURS)]}"/><text x="{x + 18}" y="{y + 11}" '
                     f'font-size="12" fill="#1b1f24">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
