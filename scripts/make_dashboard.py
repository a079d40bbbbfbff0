"""Build monitoring/grafana/dashboards/rifestream.json from Grafana's typed builders.

The dashboard is written with ``grafana-foundation-sdk`` (a dev extra), so every panel, option,
variable and query field is one the Grafana schema knows; the JSON it writes is committed, and
``tests/test_monitoring.py`` checks that the file is exactly this script's output and that every
query returns data from a real Prometheus scraping a running job.

    python scripts/make_dashboard.py            # rewrite the committed file
    python scripts/make_dashboard.py --check    # exit 1 if the committed file differs

Every query is filtered by two variables: ``instance`` (the scraped process) and ``stream`` (the
stream within it: ``main`` for a ``rifestream run`` job, each ``[[streams]] name`` in a fleet).
The process's own series (device memory, CPU) carry no ``stream`` label and are filtered by
``instance`` alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models import prometheus as prometheus_model

PanelBuilder = TypeVar("PanelBuilder", stat.Panel, table.Panel, timeseries.Panel)
OUTPUT = Path(__file__).resolve().parents[1] / "monitoring" / "grafana" / "dashboards" / "rifestream.json"

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE_WINDOW = "[$__rate_interval]"
# A budget line is dashed and red, so it reads as a limit rather than a series.
BUDGET_LINE = [
    model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
    model.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
]
CAPACITY_LINE = [model.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [4, 6]})]


def series(metric: str, *matchers: str, per_stream: bool = True) -> str:
    """``metric{instance=~"$instance",stream=~"$stream",…}``; ``per_stream=False`` for the process's own series."""
    labels = ['instance=~"$instance"', *(['stream=~"$stream"'] if per_stream else []), *matchers]
    return f"{metric}{{{','.join(labels)}}}"


def quantile(q: str, histogram: str, by: str = "") -> str:
    """The q-quantile of a histogram over the rate window, one line per instance and stream (and ``by``)."""
    labels = ", ".join(["instance", "stream", *([by] if by else []), "le"])
    return f"histogram_quantile({q}, sum by ({labels}) (rate({series(histogram + '_bucket')}{RATE_WINDOW})))"


def summed(metric: str, *matchers: str, by: str = "", fn: str = "rate") -> str:
    """``fn`` of a counter over the rate window, summed per instance and stream (and ``by``)."""
    labels = ", ".join(["instance", "stream", *([by] if by else [])])
    return f"sum by ({labels}) ({fn}({series(metric, *matchers)}{RATE_WINDOW}))"


def legend(*labels: str) -> str:
    """A series name: its instance and stream, then ``labels`` (``{{stage}}``, ``p95`` …)."""
    return " ".join(["{{instance}}", "{{stream}}", *labels])


def query(expr: str, name: str, ref_id: str) -> prometheus.Dataquery:
    return prometheus.Dataquery().datasource(DATASOURCE).expr(expr).legend_format(name).ref_id(ref_id).range()


def placed(panel: PanelBuilder, panel_id: int, title: str, grid: tuple[int, int, int, int]) -> PanelBuilder:
    """``panel`` with its id, title, data source and place on the 24-column grid (x, y, width, height)."""
    x, y, w, h = grid
    return panel.id(panel_id).title(title).datasource(DATASOURCE).grid_pos(model.GridPos(x=x, y=y, w=w, h=h))


def stat_panel(
    panel_id: int, title: str, grid: tuple[int, int, int, int], expr: str, *, unit: str = "", description: str = ""
) -> stat.Panel:
    panel = (
        placed(stat.Panel(), panel_id, title, grid)
        .with_target(query(expr, legend(), "A"))
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).fields("").values(False))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA)
        .text_mode(common.BigValueTextMode.AUTO)
        .orientation(common.VizOrientation.AUTO)
    )
    if unit:
        panel = panel.unit(unit)
    if description:
        panel = panel.description(description)
    return panel


def graph_panel(
    panel_id: int,
    title: str,
    grid: tuple[int, int, int, int],
    unit: str,
    queries: list[tuple[str, str]],
    *,
    description: str = "",
    dashed: dict[str, list[model.DynamicConfigValue]] | None = None,
) -> timeseries.Panel:
    """A time series panel of (expr, legend) queries, refIds A, B, …; ``dashed`` restyles some by refId."""
    panel = (
        placed(timeseries.Panel(), panel_id, title, grid)
        .unit(unit)
        .draw_style(common.GraphDrawStyle.LINE)
        .line_width(1)
        .fill_opacity(0)
        .show_points(common.VisibilityMode.NEVER)
        .span_nulls(False)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI).sort(common.SortOrder.DESCENDING)
        )
    )
    for i, (expr, name) in enumerate(queries):
        panel = panel.with_target(query(expr, name, chr(ord("A") + i)))
    for ref_id, properties in (dashed or {}).items():
        panel = panel.override_by_query(ref_id, properties)
    if description:
        panel = panel.description(description)
    return panel


def variables() -> list[dashboard.DatasourceVariable | dashboard.QueryVariable]:
    def label_values(name: str, label: str, selector: str) -> dashboard.QueryVariable:
        expr = f"label_values({selector}, {name})"
        return (
            dashboard.QueryVariable(name)
            .label(label)
            .datasource(DATASOURCE)
            .query({"query": expr, "refId": name})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .include_all(True)
            .multi(True)
            .all_value(".*")
            .sort(model.VariableSort.ALPHABETICAL_ASC)
        )

    return [
        dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        label_values("instance", "Instance", "rifestream_build_info"),
        label_values("stream", "Stream", 'rifestream_build_info{instance=~"$instance"}'),
    ]


def panels() -> list[stat.Panel | table.Panel | timeseries.Panel]:
    e2e = "rifestream_end_to_end_latency_seconds"
    stage = "rifestream_stage_latency_seconds"
    budget = series("rifestream_latency_budget_seconds")
    fallbacks = summed("rifestream_fallbacks_total", 'reason!="scene_cut"')
    in_between = summed("rifestream_output_frames_total", 'kind!="passed_through"')
    source_up = (
        stat_panel(
            1,
            "Source up",
            (0, 0, 4, 4),
            series("rifestream_source_up"),
            description="1 while the job's source is connected.",
        )
        .mappings(
            [
                model.ValueMap(
                    options={
                        "0": model.ValueMappingResult(text="DOWN", color="red"),
                        "1": model.ValueMappingResult(text="UP", color="green"),
                    }
                )
            ]
        )
        .thresholds(
            dashboard.ThresholdsConfig()
            .mode(model.ThresholdsMode.ABSOLUTE)
            .steps([model.Threshold(color="red", value=None), model.Threshold(color="green", value=1)])
        )
    )
    build = (
        placed(table.Panel(), 5, "Build", (19, 0, 5, 4))
        .description("Version, model and device of each stream's job.")
        .with_target(
            prometheus.Dataquery()
            .datasource(DATASOURCE)
            .expr(series("rifestream_build_info"))
            .legend_format("")
            .ref_id("A")
            .format(prometheus_model.PromQueryFormat.TABLE)
            .instant()
        )
        .show_header(True)
    )
    return [
        source_up,
        stat_panel(
            2,
            "Output fps",
            (4, 0, 5, 4),
            series("rifestream_output_frames_per_second"),
            unit="fps",
            description="Frames emitted per second over the job's fps window.",
        ),
        stat_panel(3, "p95 end-to-end latency", (9, 0, 5, 4), quantile("0.95", e2e), unit="s"),
        stat_panel(
            4,
            "Fallback share (in-between frames)",
            (14, 0, 5, 4),
            f"{fallbacks} / {in_between}",
            unit="percentunit",
            description=(
                "Share of in-between frames made by a fallback (reduced scale, blend, repeat); scene cuts excluded."
            ),
        ),
        build,
        graph_panel(
            6,
            "End-to-end latency (p50 / p95 / p99) vs budget",
            (0, 4, 12, 9),
            "s",
            [
                (quantile("0.5", e2e), legend("p50")),
                (quantile("0.95", e2e), legend("p95")),
                (quantile("0.99", e2e), legend("p99")),
                (
                    f"{budget} + 1 / {series('rifestream_input_frames_per_second')}",
                    legend("budget + 1 input interval"),
                ),
            ],
            description=(
                "From a source frame's arrival to the emission of the last output frame that depends on it. "
                "It holds one input frame interval by construction, so the line is the budget plus that interval."
            ),
            dashed={"D": BUDGET_LINE},
        ),
        graph_panel(
            7,
            "Per-stage latency (p50 / p95 / p99) vs budget",
            (12, 4, 12, 9),
            "s",
            [
                (quantile("0.5", stage, by="stage"), legend("{{stage}} p50")),
                (quantile("0.95", stage, by="stage"), legend("{{stage}} p95")),
                (quantile("0.99", stage, by="stage"), legend("{{stage}} p99")),
                (budget, legend("budget")),
            ],
            description="Time one stage took for one frame. Stages with no frames show no line.",
            dashed={"D": BUDGET_LINE},
        ),
        graph_panel(
            8,
            "Input vs output fps",
            (0, 13, 12, 8),
            "fps",
            [
                (series("rifestream_input_frames_per_second"), legend("input")),
                (series("rifestream_output_frames_per_second"), legend("output")),
                (series("rifestream_target_output_frames_per_second"), legend("target")),
            ],
            dashed={"C": BUDGET_LINE},
        ),
        graph_panel(
            9,
            "Output frames by kind",
            (12, 13, 12, 8),
            "fps",
            [(summed("rifestream_output_frames_total", by="kind"), legend("{{kind}}"))],
            description=(
                "passed_through = source frames; interpolated = model (any scale); "
                "classical, blended and repeated = fallbacks."
            ),
        ),
        graph_panel(
            10,
            "Fallbacks by reason",
            (0, 21, 12, 8),
            "fps",
            [
                (summed("rifestream_fallbacks_total", by="reason"), legend("{{reason}}")),
                (summed("rifestream_scene_cuts_total"), legend("scene cuts")),
            ],
        ),
        graph_panel(
            11,
            "Drops by stage and reason",
            (12, 21, 12, 8),
            "fps",
            [(summed("rifestream_dropped_frames_total", by="stage, reason"), legend("{{stage}} {{reason}}"))],
        ),
        graph_panel(
            12,
            "Queue depth",
            (0, 29, 12, 8),
            "short",
            [
                (series("rifestream_queue_depth"), legend("{{queue}}")),
                (series("rifestream_queue_capacity"), legend("{{queue}} capacity")),
            ],
            dashed={"B": CAPACITY_LINE},
        ),
        graph_panel(
            13,
            "Reconnects and source state",
            (12, 29, 12, 8),
            "short",
            [
                (summed("rifestream_reconnects_total", by="side", fn="increase"), legend("{{side}} reconnects")),
                (series("rifestream_source_up"), legend("source up")),
            ],
        ),
        graph_panel(
            14,
            "Device memory in use",
            (0, 37, 12, 8),
            "bytes",
            [(series("rifestream_device_memory_used_bytes", per_stream=False), "{{instance}} {{device}}")],
            description="torch.cuda.memory_allocated on a CUDA device; the process's resident set size on CPU.",
        ),
        graph_panel(
            15,
            "Process CPU",
            (12, 37, 12, 8),
            "percentunit",
            [(f"rate({series('process_cpu_seconds_total', per_stream=False)}{RATE_WINDOW})", "{{instance}}")],
            description="CPU seconds per second (1 = one core).",
        ),
    ]


def build_dashboard() -> model.Dashboard:
    board = (
        dashboard.Dashboard("rifestream")
        .uid("rifestream")
        .description(
            "Latency against budget, frame rates, fallbacks, drops, queues, reconnects and memory of rifestream jobs, "
            "per instance and stream."
        )
        .tags(["rifestream", "video"])
        .timezone("browser")
        .editable()
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .refresh("5s")
        .time("now-15m", "now")
        .version(1)
        .variables(variables())
    )
    for panel in panels():
        board = board.with_panel(panel)
    return board.build()


def render() -> str:
    """The dashboard file's exact text."""
    return json.dumps(build_dashboard(), cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed file is not this output")
    parser.add_argument("--out", type=Path, default=OUTPUT, help=f"where to write (default {OUTPUT})")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} is not the generator's output; run python scripts/make_dashboard.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
