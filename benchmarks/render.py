"""Write docs/benchmarks.md from the raw results that benchmarks/run.py saved."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from typing import Any

from load import STACK_NAMES, VARIANT_NAMES

SCENARIO_TITLES = {
    "healthy": "Matomo endpoint responds at once",
    "slow": "Matomo endpoint responds after 2 seconds",
    "down": "Matomo down (nothing listening on the port)",
}

# The targets, as ratios to the bare app or absolute figures.
# A bare app that used less of its CPU than this during the load was limited
# by something else (wrk, the machine), so its throughput is no fair baseline.
MIN_SATURATION = 0.9
MIN_THROUGHPUT_RATIO = 0.95
MAX_P99_RATIO = 1.05
MIN_HITS_PER_REQUEST = 100
QUEUE_MAX_BYTES = 16_000_000  # asgi-matomo's default queue_max_bytes
MAX_LOG_LINES = 99  # "log lines stay in the tens", on top of uvicorn's own lines

# Written as escapes because ruff flags these characters in source text.
EN_DASH = "\u2013"
TIMES = "\u00d7"

# Names of the variants in the header's sentence on the order of each round.
VARIANT_SHORT_NAMES = {
    "bare": "bare",
    "floor": "the status-only middleware",
    "old": "0.8.0",
    "new": "this checkout",
}
# Rows of the in-process middleware table: keys of results["micro"]["middleware"].
MICRO_ROW_NAMES = {
    "new": "asgi-matomo (this checkout)",
    "new_without_orjson": "asgi-matomo (this checkout) without the speedups extra",
    "old": "asgi-matomo 0.8.0",
}

Run = dict[str, Any]


def _stacks(results: dict[str, Any]) -> list[str]:
    """Return the server stacks of the results; older results name one by loop and http."""
    settings = results["settings"]
    stacks: list[str] = settings.get("stacks") or [f"{settings['loop']}-{settings['http']}"]
    return stacks


def _stack_name(stack: str) -> str:
    return STACK_NAMES.get(stack, stack)


def _has_variant(results: dict[str, Any], variant: str) -> bool:
    """Return True when results contain a load run of `variant`."""
    return any(run["variant"] == variant for run in results.get("load", []))


def _runs(results: dict[str, Any], scenario: str, variant: str, stack: str) -> list[Run]:
    default_stack = _stacks(results)[0]
    return [
        run
        for run in results.get("load", [])
        if run["scenario"] == scenario
        and run["variant"] == variant
        and run.get("stack", default_stack) == stack
    ]


def _values(runs: Iterable[Run], read: Callable[[Run], float | None]) -> list[float]:
    values = []
    for run in runs:
        value = read(run)
        if value is not None:
            values.append(value)
    return values


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _spread(values: list[float], digits: int, thousands: bool = False) -> str:
    """Format the median and the min-max range of values."""
    if not values:
        return "n/a"
    pattern = f"{{:{',' if thousands else ''}.{digits}f}}"

    def number(value: float) -> str:
        text = pattern.format(value)
        # A small negative value rounds to "-0.0", and that sign would only mislead.
        return text.removeprefix("-") if not text.strip("-0.,") else text

    median = number(statistics.median(values))
    if len(values) == 1 or min(values) == max(values):
        return median
    return f"{median} ({number(min(values))}{EN_DASH}{number(max(values))})"


def _rps(run: Run) -> float:
    return float(run["wrk"]["requests_per_second"])


def _p50_ms(run: Run) -> float:
    return run["wrk"]["latency_p50_us"] / 1000


def _p99_ms(run: Run) -> float:
    return run["wrk"]["latency_p99_us"] / 1000


def _hits_made(run: Run) -> float | None:
    if run["variant"] in ("bare", "floor"):
        return 0
    counts = run.get("app_counts")
    return counts["served_requests"] if counts else None


def _hits_delivered(run: Run) -> float:
    counts = run.get("endpoint_counts")
    return counts["hits"] if counts else 0


def _delivered_share(run: Run) -> float | None:
    made = _hits_made(run)
    if not made:
        return None
    return _hits_delivered(run) / made


def _hits_per_request(run: Run) -> float | None:
    counts = run.get("endpoint_counts")
    if not counts or not counts["http_requests"]:
        return None
    return counts["hits"] / counts["http_requests"]


def _peak_rss_mib(run: Run) -> float:
    return run["usage"]["peak_rss_kib"] / 1024


def _cpu_us_per_request(run: Run) -> float | None:
    """Return the app's CPU µs per request during the measured load.

    Results saved before load_cpu_seconds existed divide the whole process's
    CPU time, start-up and shutdown included, by every request it served.
    """
    if "load_cpu_seconds" in run:
        requests = run["wrk"]["requests"]
        return float(run["load_cpu_seconds"]) / requests * 1e6 if requests else None
    counts = run.get("app_counts")
    if not counts or not counts["served_requests"]:
        return None
    return float(run["usage"]["cpu_seconds"]) / counts["served_requests"] * 1e6


def _cpu_use(run: Run) -> float | None:
    """Return the share of one CPU that the app used during the measured load."""
    if "load_cpu_seconds" not in run or not run["wrk"]["duration_us"]:
        return None
    return float(run["load_cpu_seconds"]) / (run["wrk"]["duration_us"] / 1e6)


def _wrk_errors(run: Run) -> float:
    wrk = run["wrk"]
    return sum(wrk[key] for key in wrk if key.startswith("errors_"))


def _paired_ratios(
    results: dict[str, Any],
    scenario: str,
    variant: str,
    stack: str,
    read: Callable[[Run], float],
) -> list[float]:
    """Return read(variant run) / read(bare run) for every round that has both."""
    bare_by_round = {run["round"]: run for run in _runs(results, scenario, "bare", stack)}
    ratios = []
    for run in _runs(results, scenario, variant, stack):
        bare = bare_by_round.get(run["round"])
        if bare is not None and read(bare) > 0:
            ratios.append(read(run) / read(bare))
    return ratios


def _paired_differences(
    results: dict[str, Any],
    scenario: str,
    variant: str,
    stack: str,
    read: Callable[[Run], float | None],
) -> list[float]:
    """Return read(variant run) - read(bare run) for every round that has both."""
    bare_by_round = {run["round"]: run for run in _runs(results, scenario, "bare", stack)}
    differences = []
    for run in _runs(results, scenario, variant, stack):
        bare = bare_by_round.get(run["round"])
        value = read(run)
        bare_value = None if bare is None else read(bare)
        if value is not None and bare_value is not None:
            differences.append(value - bare_value)
    return differences


def _speed_table(
    results: dict[str, Any], scenario: str, variants: list[str], stack: str
) -> list[str]:
    lines = [
        "| variant | requests/s | ratio to bare | p50 ms | p99 ms | p99 ratio to bare "
        "| wrk errors |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for variant in variants:
        runs = _runs(results, scenario, variant, stack)
        if not runs:
            continue
        if variant == "bare":
            ratio = p99_ratio = "1"
        else:
            ratio = _spread(_paired_ratios(results, scenario, variant, stack, _rps), 3)
            p99_ratio = _spread(_paired_ratios(results, scenario, variant, stack, _p99_ms), 2)
        lines.append(
            f"| {VARIANT_NAMES[variant]} | {_spread(_values(runs, _rps), 0, thousands=True)} "
            f"| {ratio} | {_spread(_values(runs, _p50_ms), 2)} "
            f"| {_spread(_values(runs, _p99_ms), 2)} | {p99_ratio} "
            f"| {_spread(_values(runs, _wrk_errors), 0)} |"
        )
    return lines


def _delivery_table(
    results: dict[str, Any], scenario: str, variants: list[str], stack: str
) -> list[str]:
    lines = [
        "| variant | hits made | hits delivered | delivered share | hits per request to Matomo "
        "| peak RSS MiB | log lines | app CPU µs per request | added CPU µs per request "
        "| shutdown s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for variant in variants:
        runs = _runs(results, scenario, variant, stack)
        if not runs:
            continue
        shutdown = _values(runs, lambda run: run["usage"]["shutdown_seconds"])
        added = (
            "0"
            if variant == "bare"
            else _spread(
                _paired_differences(results, scenario, variant, stack, _cpu_us_per_request), 1
            )
        )
        lines.append(
            f"| {VARIANT_NAMES[variant]} "
            f"| {_spread(_values(runs, _hits_made), 0, thousands=True)} "
            f"| {_spread(_values(runs, _hits_delivered), 0, thousands=True)} "
            f"| {_spread(_values(runs, _delivered_share), 3)} "
            f"| {_spread(_values(runs, _hits_per_request), 1)} "
            f"| {_spread(_values(runs, _peak_rss_mib), 1)} "
            f"| {_spread(_values(runs, lambda run: run['log_lines']), 0, thousands=True)} "
            f"| {_spread(_values(runs, _cpu_us_per_request), 1)} | {added} "
            f"| {_spread(shutdown, 1)} |"
        )
    return lines


def _verdict(value: float | None, passes: Callable[[float], bool]) -> str:
    if value is None:
        return "not measured"
    return "met" if passes(value) else "**not met**"


def _format(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _unless_unsaturated(results: dict[str, Any], scenario: str, stack: str, verdict: str) -> str:
    """Return verdict, or why a ratio to the bare app cannot be judged in this scenario."""
    bare_use = _median(_values(_runs(results, scenario, "bare", stack), _cpu_use))
    if bare_use is None or bare_use >= MIN_SATURATION:
        return verdict
    # Throughput and latency were then limited by the load side, not by the app.
    return (
        f"not judged: the bare app used {bare_use:.2f} of its CPU (median), so read "
        "the CPU time per request below"
    )


def _target_row(cells: list[str], floor: str | None) -> str:
    """Join the cells of a targets row, putting floor after this checkout's cell.

    cells are the target, stack, this checkout, 0.8.0 and verdict cells. floor
    None leaves the status-only middleware's column out.
    """
    if floor is not None:
        cells = [*cells[:3], floor, *cells[3:]]
    return "| " + " | ".join(cells) + " |"


def _target_rows(
    results: dict[str, Any], scenarios: list[str], stack: str, with_floor: bool
) -> list[str]:
    """Return the rows of the targets table for one server stack.

    With with_floor, every row has a cell for the status-only middleware. It
    shows the middleware's ratio in the throughput and p99 rows and an en dash
    in the rows about hits, memory and logs, which it does not make.
    """
    name = _stack_name(stack)
    no_floor = EN_DASH if with_floor else None

    def runs(scenario: str, variant: str) -> list[Run]:
        return _runs(results, scenario, variant, stack)

    def ratios(scenario: str, variant: str, read: Callable[[Run], float]) -> float | None:
        return _median(_paired_ratios(results, scenario, variant, stack, read))

    # (target, figure read from each run, decimal places, test of the median ratio)
    ratio_targets: list[tuple[str, Callable[[Run], float], int, Callable[[float], bool]]] = [
        (
            f"requests/s ≥ {MIN_THROUGHPUT_RATIO} {TIMES} bare",
            _rps,
            3,
            lambda value: value >= MIN_THROUGHPUT_RATIO,
        ),
        (
            f"p99 latency ≤ {MAX_P99_RATIO} {TIMES} bare",
            _p99_ms,
            2,
            lambda value: value <= MAX_P99_RATIO,
        ),
    ]
    rows = []
    for target, read, digits, passes in ratio_targets:
        for scenario in scenarios:
            new = ratios(scenario, "new", read)
            cells = [
                f"{target}, {scenario}",
                name,
                _format(new, digits),
                _format(ratios(scenario, "old", read), digits),
                _unless_unsaturated(results, scenario, stack, _verdict(new, passes)),
            ]
            floor = _format(ratios(scenario, "floor", read), digits) if with_floor else None
            rows.append(_target_row(cells, floor))
    for scenario in (scenario for scenario in scenarios if scenario != "down"):
        new = _median(_values(runs(scenario, "new"), _hits_per_request))
        old = _median(_values(runs(scenario, "old"), _hits_per_request))
        cells = [
            f"≥ {MIN_HITS_PER_REQUEST} hits per HTTP request to Matomo, {scenario}",
            name,
            _format(new, 1),
            _format(old, 1),
            _verdict(new, lambda v: v >= MIN_HITS_PER_REQUEST),
        ]
        rows.append(_target_row(cells, no_floor))
    if "healthy" in scenarios:
        new_shares = _values(runs("healthy", "new"), _delivered_share)
        old_shares = _values(runs("healthy", "old"), _delivered_share)
        new = min(new_shares) if new_shares else None
        old = min(old_shares) if old_shares else None
        cells = [
            "every hit made is delivered by graceful shutdown, healthy (lowest share)",
            name,
            _format(new, 4),
            _format(old, 4),
            _verdict(new, lambda v: v >= 1.0),
        ]
        rows.append(_target_row(cells, no_floor))
    if "down" in scenarios and "healthy" in scenarios:
        growth = {}
        for variant in ("new", "old"):
            down = _median(_values(runs("down", variant), _peak_rss_mib))
            healthy = _median(_values(runs("healthy", variant), _peak_rss_mib))
            growth[variant] = None if down is None or healthy is None else down - healthy
        cap_mib = QUEUE_MAX_BYTES / 1024 / 1024
        cells = [
            f"peak RSS down minus peak RSS healthy ≤ queue cap ({cap_mib:.1f} MiB), MiB",
            name,
            _format(growth["new"], 1),
            _format(growth["old"], 1),
            _verdict(growth["new"], lambda v: v <= cap_mib),
        ]
        rows.append(_target_row(cells, no_floor))
    for scenario in scenarios:
        bare_lines = _median(_values(runs(scenario, "bare"), lambda r: r["log_lines"]))
        extra = {}
        for variant in ("new", "old"):
            lines = _values(runs(scenario, variant), lambda r: r["log_lines"])
            extra[variant] = None if not lines or bare_lines is None else max(lines) - bare_lines
        cells = [
            f"log lines beyond the bare app's ≤ {MAX_LOG_LINES}, {scenario} (most in a run)",
            name,
            _format(extra["new"], 0),
            _format(extra["old"], 0),
            _verdict(extra["new"], lambda v: v <= MAX_LOG_LINES),
        ]
        rows.append(_target_row(cells, no_floor))
    return rows


def _bare_cpu(results: dict[str, Any], stack: str) -> float | None:
    """Return the median CPU µs per request of the bare app on a stack, over all scenarios."""
    return _median(
        [
            value
            for scenario in results["settings"]["scenarios"]
            for value in _values(_runs(results, scenario, "bare", stack), _cpu_us_per_request)
        ]
    )


def _budget(bare_cpu: float) -> float:
    """Return the CPU µs per request that tracking may add for MIN_THROUGHPUT_RATIO."""
    return bare_cpu * (1 / MIN_THROUGHPUT_RATIO - 1)


def _cost_lines(results: dict[str, Any]) -> list[str]:
    """Return the section on the CPU time that tracking adds per request, by stack."""
    scenarios: list[str] = results["settings"]["scenarios"]
    with_floor = _has_variant(results, "floor")
    text = (
        "CPU µs per request of the app process (its user plus system time during the measured "
        "load divided by the requests wrk completed in that time, the background sender "
        "included), medians of the rounds with their range. "
        "*Added* is this checkout minus the bare app of the same round, and its median is "
        "taken over those per-round differences, so it can differ from the difference of the "
        "two medians beside it. *Budget* is what a "
        f"throughput of {MIN_THROUGHPUT_RATIO} {TIMES} bare leaves for all tracking work at "
        f"saturation: bare {TIMES} (1/{MIN_THROUGHPUT_RATIO} {chr(0x2212)} 1)."
    )
    head = ["stack", "scenario", "bare app µs", "this checkout µs", "added µs", "budget µs"]
    if with_floor:
        text += (
            " The status-only middleware's column is the same difference for a middleware "
            "that only times the request and reads the response status."
        )
        head.append("status-only middleware added µs")
    head.append("asgi-matomo 0.8.0 added µs")
    lines = [
        "## CPU time that tracking adds per request",
        "",
        text,
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]
    for stack in _stacks(results):
        for scenario in scenarios:
            bare_runs = _runs(results, scenario, "bare", stack)
            new_runs = _runs(results, scenario, "new", stack)
            floor_runs = _runs(results, scenario, "floor", stack)
            if not bare_runs or not (new_runs or floor_runs):
                continue
            bare = _values(bare_runs, _cpu_us_per_request)
            budget = _budget(_median(bare) or 0.0)
            added = _paired_differences(results, scenario, "new", stack, _cpu_us_per_request)
            cells = [
                _stack_name(stack),
                scenario,
                _spread(bare, 1),
                _spread(_values(new_runs, _cpu_us_per_request), 1),
                _spread(added, 1),
                f"{budget:.1f}",
            ]
            if with_floor:
                floor = _paired_differences(results, scenario, "floor", stack, _cpu_us_per_request)
                cells.append(_spread(floor, 1))
            old = _paired_differences(results, scenario, "old", stack, _cpu_us_per_request)
            cells.append(_spread(old, 0))
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *_reachability_lines(results), ""]
    return lines


def _floor_sentences(stack: str, floor: float, budget: float, added: float | None) -> list[str]:
    """Describe what the status-only middleware's added CPU µs leave of the budget on a stack.

    The figures have two decimals here, so that a floor just above the budget
    does not read as equal to it.
    """
    adds = (
        "The status-only middleware, which only times the request and reads the response "
        f"status, adds {floor:.2f} µs"
    )
    if floor > budget:
        return [
            f"{adds}, more than the {budget:.2f} µs budget.",
            f"So {MIN_THROUGHPUT_RATIO} {TIMES} bare is not reachable at saturation on "
            f"{_stack_name(stack)} by any middleware that wraps the application in the same "
            "process, because reading the status and the time already costs more.",
        ]

    # A difference at or below zero is noise between the paired runs, not a saving.
    floor_cost = max(floor, 0.0)
    left = budget - floor_cost
    noise = ", within the noise between paired runs" if floor <= 0 else ""
    sentences = [
        f"{adds}{noise}. That leaves {left:.2f} µs of the {budget:.2f} µs budget for building "
        "and sending the hit."
    ]
    if added is None:
        return sentences
    beyond = added - floor_cost
    if beyond <= left:
        fits = "which fits in what is left"
    elif left > 0:
        fits = f"{beyond / left:.1f} {TIMES} what is left"
    else:
        fits = "more than is left"
    if floor_cost > 0:
        sentences.append(
            f"This checkout adds {beyond:.2f} µs beyond the status-only middleware "
            f"({added:.1f} µs in all), {fits}."
        )
    else:
        sentences.append(f"This checkout adds {added:.1f} µs, {fits}.")
    return sentences


def _reachability_lines(results: dict[str, Any]) -> list[str]:
    """Explain, with the measured figures, whether the throughput target can be met.

    The status-only middleware's added CPU time is the floor. Where it exceeds
    the budget, no middleware that wraps the app in its process meets the target.
    """
    scenarios: list[str] = results["settings"]["scenarios"]
    micro_middleware = (results.get("micro") or {}).get("middleware", {})

    # Healthy is the scenario in which the sender does all of its work.
    scenario = "healthy" if "healthy" in scenarios else scenarios[0]
    lines = []
    for stack in _stacks(results):
        bare = _median(_values(_runs(results, scenario, "bare", stack), _cpu_us_per_request))
        if bare is None:
            continue
        added = _median(_paired_differences(results, scenario, "new", stack, _cpu_us_per_request))
        floor = _median(
            _paired_differences(results, scenario, "floor", stack, _cpu_us_per_request)
        )
        budget = _budget(bare)
        sentences = [
            f"**{_stack_name(stack)}**, scenario {scenario}: the bare app needs {bare:.1f} µs "
            f"of CPU per request, so the budget is {budget:.1f} µs."
        ]
        if added is not None:
            verdict = (
                "within the budget"
                if added <= budget
                else f"{added / budget:.1f} {TIMES} the budget"
            )
            sentences.append(
                f"Tracking adds {added:.1f} µs, {verdict}. At saturation that gives a "
                f"throughput of about {bare:.1f} / ({bare:.1f} + {added:.1f}) = "
                f"{bare / (bare + added):.2f} {TIMES} bare."
            )
        if floor is not None:
            sentences += _floor_sentences(stack, floor, budget, added)
        lines.append("- " + " ".join(sentences))
    if not lines:
        return lines

    new_micro = micro_middleware.get("new") or {}
    with_orjson = new_micro.get("overhead_us")
    without_orjson = (micro_middleware.get("new_without_orjson") or {}).get("overhead_us")
    if with_orjson:
        # Results saved before the run without orjson have only the "new" row.
        costs = f"costs {with_orjson['median']:.2f} µs"
        if without_orjson and new_micro.get("orjson_version"):
            costs += (
                f" with orjson and {without_orjson['median']:.2f} µs with the standard "
                "library's json"
            )
        lines.append(
            f"- In process, building a hit and queueing it {costs} (the benchmarks below). "
            "Under load the same code costs more than in a tight loop, as the added CPU above "
            "shows, and the sender's HTTP client adds its share of each bulk POST."
        )
    lines.append(
        "- At saturation the throughput ratio is the CPU time per request in another form. "
        "A service below saturation should keep its throughput and pay the added µs of CPU per "
        "request. That is an inference from the CPU figures: every run here saturates the app."
    )
    return lines


def _micro_row_name(key: str, figures: dict[str, Any]) -> str:
    name = MICRO_ROW_NAMES.get(key, key)
    # Only results that recorded orjson_version can tell that orjson was missing.
    if key == "new" and "orjson_version" in figures and figures["orjson_version"] is None:
        name += ", orjson not installed"
    return name


def _micro_lines(micro: dict[str, Any]) -> list[str]:
    middleware = micro.get("middleware", {})
    iterations = next((figures["iterations"] for figures in middleware.values()), 0)
    text = (
        "`benchmarks/micro_middleware.py` calls a trivial ASGI app (it sends a 200 response "
        "with a 2-byte body) directly with a prebuilt HTTP scope, then the same app wrapped in "
        f"the middleware, and subtracts. Each repeat times {iterations:,} calls of each. The "
        "table shows the median of the repeats with their range, in microseconds per request. "
        "For this "
        "checkout the cost is building the hit and putting it in the sender's queue; between "
        "repeats the sender delivers the queue to the loopback endpoint. asgi-matomo 0.8.0 sends "
        "every hit inside the request, so its client gets a mock transport that returns 204 "
        "without a network, and its figure is hit building plus the HTTP client's own work."
    )
    if "new_without_orjson" in middleware:
        version = (middleware.get("new") or {}).get("orjson_version")
        installed = f" (orjson {version} in the first row)" if version else ""
        text += (
            " The row without the speedups extra runs with `--without-orjson`, which hides "
            "orjson from the package, so it encodes each hit with the standard library's json "
            f"instead of orjson{installed}."
        )
    lines = [
        "## Middleware cost per request, in process",
        "",
        text,
        "",
        "| variant | bare app µs | with middleware µs | middleware's own cost µs |",
        "| --- | --- | --- | --- |",
    ]
    for key in MICRO_ROW_NAMES:
        figures = middleware.get(key)
        if not figures:
            continue
        cells = [
            _spread([figures[name]["min"], figures[name]["median"], figures[name]["max"]], 2)
            for name in ("bare_us", "wrapped_us", "overhead_us")
        ]
        lines.append(f"| {_micro_row_name(key, figures)} | {' | '.join(cells)} |")

    sender = micro.get("sender")
    if not sender:
        return lines
    lines += ["", *_delivery_cost_lines(sender)]
    return lines


def _encoding_costs(encoding: dict[str, Any]) -> str:
    """Describe what encoding one hit costs, as measured by micro_sender.py."""
    json_us = f"{encoding['json_dumps_us']:.2f} µs with `json.dumps`"
    urlencode_us = (
        f"{encoding['urlencode_us']:.2f} µs with `urllib.parse.urlencode` (the form that single "
        "hits are sent in)"
    )
    if "orjson_dumps_us" not in encoding:
        # Results saved before orjson was measured.
        return f"{json_us} and {urlencode_us}."
    if encoding["orjson_dumps_us"] is None:
        return f"{json_us} and {urlencode_us}. orjson was not installed, so not measured."
    return (
        f"{json_us}, {encoding['orjson_dumps_us']:.2f} µs with `orjson.dumps` (the speedups "
        f"extra) and {urlencode_us}."
    )


def _delivery_cost_lines(sender: dict[str, Any]) -> list[str]:
    encoding = sender["encoding"]
    lines = [
        "## Delivery cost per hit",
        "",
        "`benchmarks/micro_sender.py` measures the CPU time of the sending process "
        "(`time.process_time`, so the endpoint's own work is not counted) per hit. One hit of "
        f"{encoding['hit_json_bytes']} bytes of JSON costs {_encoding_costs(encoding)} "
        "The first two columns give the CPU µs per hit of `json.dumps` of a "
        "bulk body plus one POST of it to the loopback endpoint. They use `httpx.AsyncClient` "
        "and a bare HTTP/1.1 client on asyncio streams, which is a lower bound for any client. "
        "The third column is asgi-matomo's sender from this checkout at that `batch_max_hits`: "
        "submit, batching, serialization and POST. Each figure is the median of "
        f"{sender['repeats']} repeats.",
        "",
        "| hits per POST | httpx µs per hit | asyncio streams µs per hit "
        "| asgi-matomo sender µs per hit | sender's hits per request |",
        "| --- | --- | --- | --- | --- |",
    ]
    clients = sender["clients_cpu_per_hit_us"]
    package = sender.get("sender") or {}
    for size in sender["batch_sizes"]:
        key = str(size)
        package_cost = package.get("cpu_per_hit_us", {}).get(key)
        package_batch = package.get("hits_per_request", {}).get(key)
        lines.append(
            f"| {size} | {clients['httpx'][key]:.2f} | {clients['asyncio_streams'][key]:.2f} "
            f"| {_format(package_cost, 2)} | {_format(package_batch, 1)} |"
        )
    if "skipped" in package:
        lines += ["", f"The package's sender was not measured: {package['skipped']}."]
    return lines


def _endpoint_implementations(results: dict[str, Any]) -> str:
    names = sorted(
        {
            run["endpoint_counts"]["implementation"]
            for run in results.get("load", [])
            if run.get("endpoint_counts")
        }
    )
    return " and ".join(f"`{name}`" for name in names) or "none"


def _stack_flags(stack: str) -> tuple[str, str]:
    loop, _, http = stack.partition("-")
    return f"--loop {loop}", f"--http {http}"


def _checkout_dependencies(versions: dict[str, str]) -> str:
    """Name the versions of the HTTP client and of orjson in the checkout's environment."""
    httpx = f"httpx {versions.get('httpx')}"
    httpcore = f"httpcore {versions.get('httpcore')}"
    if "orjson" not in versions:
        # Results saved before orjson was reported, or an environment without it.
        return f"{httpx} and {httpcore}"
    return f"{httpx}, {httpcore} and orjson {versions['orjson']} (the speedups extra)"


def _middleware_lines(settings: dict[str, Any]) -> list[str]:
    options = settings.get("middleware_options")
    checkout = f"; this checkout also gets `{options}`" if options else ""
    lines = [
        "- Middleware: `MatomoMiddleware(app, matomo_url=..., idsite=1)` with every other "
        f"argument at its default, in both versions{checkout}."
    ]
    if "floor" in settings["variants"]:
        lines.append(
            "- Status-only middleware: `StatusTimingMiddleware` in `benchmarks/app.py`, a pure "
            "ASGI middleware that reads `time.perf_counter()` before and after the app, wraps "
            "`send` in a plain function that reads the status of `http.response.start`, and "
            "keeps both in an attribute. It sends no hits."
        )
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _round_order(variants: list[str]) -> str:
    """Describe the order in which every round runs the variants."""
    order = ", ".join(VARIANT_SHORT_NAMES.get(variant, variant) for variant in variants)
    text = f"every round runs each stack and scenario as {order}"
    if len(variants) == 1:
        return text + "."
    alike = {2: "both", 3: "all three", 4: "all four"}.get(len(variants), "all of them")
    return f"{text}, in that order, so drift affects {alike} alike."


def _header_lines(results: dict[str, Any]) -> list[str]:
    machine = results["machine"]
    settings = results["settings"]
    new = results["versions"]["new"]
    old = results["versions"]["old"]
    stacks = ", ".join(
        f"{_stack_name(stack)} (`{'`, `'.join(_stack_flags(stack))}`)"
        for stack in _stacks(results)
    )
    pinning = (
        "the app on CPU 0, wrk and the Matomo endpoint on the other CPU"
        if settings["pin_cpus"] and int(settings["cpus_available"]) > 1
        else "no CPU pinning"
    )
    return [
        "# Benchmarks",
        "",
        "This page is written by `benchmarks/run.py`; edit that script, not this page. "
        "`benchmarks/README.md` explains the method, the options and how to rerun it.",
        "",
        f"Command: `{results['command']}`, started {results['started_at']}, "
        f"took {results.get('elapsed_seconds', '?')} s.",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores; memory {machine['memory']}; "
        f"kernel {machine['kernel']}; {machine['os']}.",
        f"- Python {new['python']}; uvicorn {new.get('uvicorn')} with uvloop "
        f"{new.get('uvloop')} and httptools {new.get('httptools')}, or with asyncio and h11 "
        f"{new.get('h11', '(version not recorded)')}; starlette {new.get('starlette')}; "
        f"{machine['wrk']}.",
        f"- This checkout: asgi-matomo {new.get('asgi-matomo', 'not installed')} at commit "
        f"{machine['checkout']}, with {_checkout_dependencies(new)}.",
        f"- asgi-matomo {old.get('asgi-matomo')} from PyPI, with httpx2 {old.get('httpx2')}, "
        f"httpcore2 {old.get('httpcore2')} and matomo-core {old.get('matomo-core')}; "
        "the same uvicorn, uvloop, httptools and starlette versions as above.",
        "",
        "## Load settings",
        "",
        "- App: one Starlette route returning a small JSON object "
        "(`GET /items/42?page=1`), served by `uvicorn --workers 1 --loop LOOP --http HTTP "
        "--no-access-log` on 127.0.0.1; uvicorn's default log level (info), so its own start "
        "and stop lines are counted too.",
        f"- Server stacks: {stacks}. `pip install uvicorn` runs asyncio and h11; "
        "`pip install uvicorn[standard]` adds uvloop and httptools, which uvicorn then uses. "
        "Both are common in production, so every target is judged on each.",
        *_middleware_lines(settings),
        f"- Matomo endpoint: {_endpoint_implementations(results)}, served by its own uvicorn "
        "process on 127.0.0.1.",
        f"- Load: `wrk -t{settings['wrk_threads']} -c{settings['connections']} "
        f"-d{settings['duration']:g}s` after {settings['warmup']:g} s of unmeasured warm-up; "
        "latency percentiles are wrk's exact values, printed by `benchmarks/report.lua`.",
        f"- {_count(settings['rounds'], 'round')}; {_round_order(settings['variants'])} "
        "Each figure "
        "is the median of the rounds, with the lowest and highest in brackets. Ratios to bare "
        f"are taken within each round, then their median. CPU placement: {pinning}.",
        "- After the load, the app gets SIGINT and shuts down gracefully (the middleware "
        "flushes its queue); then the endpoint's counters are read. Peak RSS is VmHWM of the "
        "app process; log lines are all lines it wrote to stderr.",
        "",
    ]


def _reading_notes(results: dict[str, Any]) -> list[str]:
    budgets = []
    for stack in _stacks(results):
        bare_cpu = _bare_cpu(results, stack)
        if bare_cpu is not None:
            budgets.append(
                f"{bare_cpu:.1f} µs on {_stack_name(stack)} leaves {_budget(bare_cpu):.1f} µs"
            )
    budget = ""
    if budgets:
        budget = (
            f" At a ratio of {MIN_THROUGHPUT_RATIO}, the bare app's CPU time per request limits "
            "all tracking work. Its median over all scenarios of " + ", and ".join(budgets) + "."
        )
    return [
        "## Reading the results",
        "",
        "- wrk keeps every connection busy, so the app's CPU is saturated, except where the "
        "targets table says otherwise, and requests per second is about the inverse of the "
        "app's CPU time per request. Every microsecond that "
        "tracking adds to a request lowers throughput by that share. The column *added CPU µs "
        "per request* includes the background sender's work, because it runs in the same "
        f"process and event loop.{budget} A service that is not saturated pays the same CPU "
        "time but should keep its throughput (not measured here).",
        "- On a shared machine, other processes can take CPU time from wrk or from the app for "
        "part of a run. CPU time per request is steadier than requests per second.",
        "- Latency under a closed loop follows throughput: p50 is about the number of "
        "connections divided by requests per second, and p99 grows with it. So at saturation "
        "the p99 target can only be met where throughput is close to bare. p99 can also "
        "include the pauses in which the sender encodes and posts a batch on the event loop "
        "that serves the requests.",
        "- In the `slow` scenario every bulk request takes 2 seconds, so delivery is limited to "
        "the hits per batch, times the batches in flight, divided by 2 seconds. Hits beyond "
        "that fill the queue and are dropped, counted and logged at a limited rate; hits still "
        "queued when the shutdown deadline ends are lost.",
        "- The endpoint runs on the other CPU with wrk. It only records hits, while a real "
        "Matomo spends milliseconds per hit, so its capacity is far higher than a real "
        "Matomo's.",
        "",
    ]


def _targets_intro(with_floor: bool) -> list[str]:
    """Return the heading, text and table head of the targets table."""
    text = (
        "Each row compares this checkout (and asgi-matomo 0.8.0 for reference) with the "
        "target on one server stack. Ratios are medians of the per-round ratios to the bare "
        "app on the same stack."
    )
    head = ["target", "stack", "this checkout", "asgi-matomo 0.8.0", "verdict"]
    if with_floor:
        text += (
            " The status-only middleware times each request and reads its response status, "
            "and tracks nothing, so its ratios are a floor for any middleware that tracks "
            "requests in the app's process. It makes no hits, so the rows about hits, memory "
            f"and log lines show {EN_DASH} for it."
        )
        head.insert(3, "status-only middleware")
    return [
        "## Targets for this checkout",
        "",
        text,
        "",
        "| " + " | ".join(head) + " |",
        "|" + " --- |" * len(head),
    ]


def render(results: dict[str, Any]) -> str:
    """Return the Markdown report for results."""
    settings = results["settings"]
    scenarios: list[str] = settings["scenarios"]
    variants: list[str] = settings["variants"]
    stacks = _stacks(results)
    with_floor = _has_variant(results, "floor")
    lines = _header_lines(results)

    if results.get("load"):
        lines += _targets_intro(with_floor)
        for stack in stacks:
            lines += _target_rows(results, scenarios, stack, with_floor)
        lines.append("")
        if "bare" in variants and ("new" in variants or "floor" in variants):
            lines += _cost_lines(results)
        for scenario in scenarios:
            delay = settings["endpoint_delays"][scenario]
            where = (
                "tracking URL on a loopback port with nothing listening"
                if delay is None
                else f"endpoint delay {delay:g} s"
            )
            lines += [
                f"## {SCENARIO_TITLES[scenario]}",
                "",
                f"Scenario `{scenario}`: {where}.",
                "",
            ]
            for stack in stacks:
                lines += [
                    f"### {_stack_name(stack)}",
                    "",
                    *_speed_table(results, scenario, variants, stack),
                    "",
                    *_delivery_table(results, scenario, variants, stack),
                    "",
                ]
    if results.get("micro"):
        lines += [*_micro_lines(results["micro"]), ""]
    lines += _reading_notes(results)
    return "\n".join(lines)
