"""The report: one self-contained HTML page: the training curves, then a section per paper figure (E2-E10).

``build_report(out_dir)`` runs every canned query (physlm/sql/queries/) on one warehouse snapshot, draws
each with matplotlib (Agg, headless) and writes ``{out_dir}/index.html``. Each section states the paper's
finding (spec C.3-C.7, paraphrased), our measured value computed from the query's rows, the plot and the
rows themselves; an empty query gives "no data yet" instead of a plot, never an error.

Images are PNGs inlined as base64 ``data:`` URIs: the page is ONE file that opens in any browser without a
server and survives being copied, mailed or attached (no relative links to break). Nothing else is
written. ``out_dir`` may be local or ``s3://``.
"""

from __future__ import annotations

import base64
import html
import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from physlm.config import QUERIES  # noqa: E402
from physlm.sql import queries  # noqa: E402
from physlm.store import storage  # noqa: E402
from physlm.tables import in_distribution, test_set_order  # noqa: E402

PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
MAX_PANELS = 4


def _pct(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def _num(v) -> float:
    return float("nan") if v is None else float(v)


# ---------------------------------------------------------------------------------------------------------
# Plot helpers: each returns a Figure, or None when there is nothing to draw


def _bars(
    categories: list[str],
    series: dict[str, list[float]],
    ylabel: str,
    title: str = "",
    errors: dict[str, tuple[list[float], list[float]]] | None = None,
    ylim: tuple | None = (0, 1.05),
    ax=None,
):
    """Grouped bars: one group per category, one bar per series (NaN = no bar)."""
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(5.0, 1.0 + 0.9 * len(categories) * max(1, len(series)) ** 0.5), 3.6))
    x = np.arange(len(categories))
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        yerr = None
        if errors and label in errors:
            lo, hi = errors[label]
            ok = lambda *xs: not any(math.isnan(x) for x in xs)  # noqa: E731
            yerr = np.array(
                [
                    [max(0.0, v - low) if ok(v, low) else 0 for v, low in zip(values, lo)],
                    [max(0.0, h - v) if ok(v, h) else 0 for v, h in zip(values, hi)],
                ]
            )
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width,
            values,
            width,
            label=label,
            color=PALETTE[i % len(PALETTE)],
            yerr=yerr,
            capsize=3 if yerr is not None else 0,
        )
    tilt = len(categories) > 4 or max((len(c) for c in categories), default=0) > 10
    ax.set_xticks(x, categories, rotation=20 if tilt else 0, ha="right" if tilt else "center")
    ax.set_ylabel(ylabel)
    if ylim:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title, fontsize=10)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: never on a bar
    ax.grid(axis="y", alpha=0.3)
    return fig if fig is not None else ax.figure


def _heat(panels: list[tuple[str, list, list, np.ndarray]], xlabel: str, ylabel: str, label: str):
    """Heat maps side by side: (title, x tick labels, y tick labels, values (len(y) len(x)))."""
    panels = panels[:MAX_PANELS]
    fig, axes = plt.subplots(1, len(panels), figsize=(1.0 + 3.6 * len(panels), 3.4), squeeze=False)
    for ax, (title, xs, ys, values) in zip(axes[0], panels):
        im = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        ax.set_yticks(range(len(ys)), [str(v) for v in ys])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        for (i, j), v in np.ndenumerate(values):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    fig.colorbar(im, ax=list(axes[0]), label=label, shrink=0.9)
    return fig


# ---------------------------------------------------------------------------------------------------------
# One function per section: rows -> (measured value as text, Figure or None)


def _accuracy(rows):
    by_op = _accuracy_by_op(rows)
    rows = [r for r in rows if r["op"] == -1]
    sets = sorted({r["test_set"] for r in rows}, key=test_set_order)
    series, errors, notes = {}, {}, []
    for key in sorted({(r["model"], r["decoding"]) for r in rows}):
        by = {r["test_set"]: r for r in rows if (r["model"], r["decoding"]) == key}
        label = " ".join(key)
        series[label] = [_num(by[s]["accuracy"]) if s in by else math.nan for s in sets]
        errors[label] = (
            [_num(by[s]["ci_low"]) if s in by else math.nan for s in sets],
            [_num(by[s]["ci_high"]) if s in by else math.nan for s in sets],
        )
        parts = [
            f"{s} {_pct(by[s]['accuracy'])} (CI {_pct(by[s]['ci_low'])}–{_pct(by[s]['ci_high'])}, n={by[s]['n']})"
            for s in sorted(by, key=test_set_order)
        ]
        notes.append(f"{label}: " + "; ".join(parts))
    if not by_op:
        return notes, _bars(sets, series, "fully-correct accuracy", errors=errors)
    ops, op_series, op_notes = by_op
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.0, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    _bars(sets, series, "fully-correct accuracy", title="by test set", errors=errors, ax=left)
    _bars([f"op {k}" for k in ops], op_series, "fully-correct accuracy", title="in distribution, by op", ax=right)
    fig.tight_layout()
    return notes + op_notes, fig


def _accuracy_by_op(rows):
    """The in-distribution test sets (test_id, test_seen: the training op law), per op: (ops, series, notes)."""
    per_op = [r for r in rows if r["op"] != -1]
    in_dist = {r["test_set"] for r in per_op if in_distribution(r["test_set"])}
    if not in_dist:
        return None
    ops = sorted({r["op"] for r in per_op if r["test_set"] in in_dist})
    series, notes = {}, []
    for key in sorted({(r["model"], r["decoding"], r["test_set"]) for r in per_op if r["test_set"] in in_dist}):
        by = {r["op"]: r for r in per_op if (r["model"], r["decoding"], r["test_set"]) == key}
        series[" ".join(key)] = [_num(by[k]["accuracy"]) if k in by else math.nan for k in ops]
        notes.append(
            " ".join(key)
            + " by op: "
            + "; ".join(f"op {k} {_pct(by[k]['accuracy'])} (n={by[k]['n']})" for k in sorted(by))
        )
    return ops, series, notes


def _unnecessary(rows):
    rows = [r for r in rows if r["op"] == -1]
    sets = sorted({r["test_set"] for r in rows}, key=test_set_order)
    series, notes = {}, []
    for key in sorted({(r["model"], r["decoding"]) for r in rows}):
        by = {r["test_set"]: r for r in rows if (r["model"], r["decoding"]) == key}
        series[" ".join(key)] = [_num(by[s]["mean_unnecessary"]) if s in by else math.nan for s in sets]
        notes.append(
            " ".join(key)
            + ": "
            + "; ".join(
                f"{s} {by[s]['mean_unnecessary']:.2f} per solution (n={by[s]['n_correct']})"
                for s in sorted(by, key=test_set_order)
            )
        )
    top = max([v for vs in series.values() for v in vs if not math.isnan(v)] + [0.5])
    return notes, _bars(sets, series, "unnecessary params / correct solution", ylim=(0, 1.15 * top))


def _probe_bars(rows, category, notes_fmt):
    """Per model and test set: grouped bars over tasks (or task/label), V-probe vs baselines."""
    keys = sorted({(r["model"], r["test_set"]) for r in rows}, key=lambda k: (k[0], test_set_order(k[1])))
    keys = keys[:MAX_PANELS]
    fig, axes = plt.subplots(1, len(keys), figsize=(0.5 + 5.5 * len(keys), 3.6), squeeze=False)
    notes = []
    for ax, (model, test_set) in zip(axes[0], keys):
        mine = [r for r in rows if (r["model"], r["test_set"]) == (model, test_set)]
        cats = [category(r) for r in mine]
        series = {
            "V-probe": [_num(r["vprobe"]) for r in mine],
            "random-init V-probe": [_num(r["random_init"]) for r in mine],
        }
        if any(r["linear"] is not None for r in mine):
            series["linear probe"] = [_num(r["linear"]) for r in mine]
        series["majority"] = [_num(r["majority"]) for r in mine]
        _bars(cats, series, "probe accuracy", title=f"{model} · {test_set}", ax=ax)
        steps = sorted({r["probe_step"] for r in mine if r.get("probe_step")})
        where = f" (probe step {', '.join(steps)})" if steps else ""
        notes.append(f"{model} on {test_set}{where}: " + "; ".join(notes_fmt(r) for r in mine))
    return notes, fig


def _probe_note(r, name):
    return (
        f"{name} {_pct(r['vprobe'])} vs random-init {_pct(r['random_init'])} vs majority "
        f"{_pct(r['majority'])} (n={r['n']})"
    )


def _mcc_note(r):
    mccs = (r.get("vprobe_mcc"), r.get("random_init_mcc"))
    return "" if None in mccs else f", MCC {mccs[0]:.2f} vs {mccs[1]:.2f}"


def _probe_accuracy(rows):
    return _probe_bars(rows, lambda r: r["task"], lambda r: _probe_note(r, r["task"]) + _mcc_note(r))


def _probe_by_label(rows):
    return _probe_bars(
        rows, lambda r: f"{r['task']} {r['label']}", lambda r: _probe_note(r, f"{r['task']} on {r['label']}s")
    )


def _share_bars(rows, category, share, n_key, k_key, ylabel):
    cats = [category(r) for r in rows]
    values = [_num(r[share]) for r in rows]
    fig = _bars(
        cats,
        {ylabel: values},
        ylabel,
        errors={ylabel: ([_num(r["ci_low"]) for r in rows], [_num(r["ci_high"]) for r in rows])},
    )
    notes = [f"{category(r)}: {r[k_key]} of {r[n_key]} = {_pct(r[share])}" for r in rows]
    return notes, fig


def _error_plan(rows):
    notes, fig = _share_bars(
        rows,
        lambda r: f"{r['model']} {r['test_set']}",
        "share_probe_true",
        "n_probed",
        "n_probe_true",
        "share with probe nece(A) = true",
    )
    notes = [
        n + f" of the probed unnecessary A ({r['n_unnecessary']} unnecessary A in {r['n_solutions']} correct solutions)"
        for n, r in zip(notes, rows)
    ]
    return notes, fig


def _error_ready(rows):
    rows = [r for r in rows if r["test_set"] == "all"]
    notes, fig = _share_bars(
        rows,
        lambda r: f"{r['model']} {r['task']}",
        "share_probe_false",
        "n_matched",
        "n_probe_false",
        "share with probe = false",
    )
    notes = [
        n + f" of the matched first wrong A say false ({r['n_wrong']} wrong solutions, "
        f"{r['n_exact_state']} matched at the exact state)"
        for n, r in zip(notes, rows)
    ]
    return notes, fig


def _depth_width(rows):
    panels, notes = [], []
    for ts in sorted({r["test_set"] for r in rows}, key=test_set_order):
        mine = [r for r in rows if r["test_set"] == ts]
        layers, widths = sorted({r["n_layer"] for r in mine}), sorted({r["width"] for r in mine})
        grid = np.full((len(layers), len(widths)), np.nan)
        for r in mine:
            grid[layers.index(r["n_layer"]), widths.index(r["width"])] = _num(r["best_accuracy"])
        panels.append((ts, widths, layers, grid))
        best = max(mine, key=lambda r: _num(r["best_accuracy"]))
        notes.append(
            f"{ts}: best {best['model']} {_pct(best['best_accuracy'])}; "
            + ", ".join(f"{r['model']} {_pct(r['best_accuracy'])}" for r in mine)
        )
    return notes, _heat(panels, "width", "layers", "best accuracy")


def _layer_distance(rows):
    panels, notes = [], []
    keys = sorted({(r["checkpoint_id"], r["test_set"]) for r in rows}, key=lambda k: (k[0], test_set_order(k[1])))
    for key in keys:
        mine = [r for r in rows if (r["checkpoint_id"], r["test_set"]) == key]
        layers = sorted({r["layer"] for r in mine}, key=lambda layer: (layer == -1, layer))
        ts = sorted({r["t"] for r in mine})
        grid = np.full((len(layers), len(ts)), np.nan)
        for r in mine:
            grid[layers.index(r["layer"]), ts.index(r["t"])] = _num(r["accuracy"])
        panels.append((f"{mine[0]['model']} · {key[1]}", ts, ["final" if x == -1 else x for x in layers], grid))
        last = layers[-1]
        notes.append(
            f"{mine[0]['model']} on {key[1]}: last layer "
            + ", ".join(f"t={r['t']} {_pct(r['accuracy'])}" for r in mine if r["layer"] == last)
        )
    return notes, _heat(panels, "distance t to the query", "layer", "nece probe accuracy")


def _curves(rows):
    """Training loss against tokens seen, one line per train step (checkpoint lineage); accuracy of evaluated
    checkpoints on a second axis."""
    lineages: dict[str, dict] = {}
    for r in rows:
        line = lineages.setdefault(r["train_hash"], {"model": r["model"], "points": {}, "acc": {}})
        line["points"][r["tokens_seen"]] = _num(r["loss"])
        if r["test_set"] is not None:
            line["acc"][(r["test_set"], r["tokens_seen"])] = _num(r["accuracy"])
    fig, ax = plt.subplots(figsize=(7.0, 3.6))
    acc_ax = None
    notes = []
    for i, (h, line) in enumerate(lineages.items()):
        xs = sorted(line["points"])
        color = PALETTE[i % len(PALETTE)]
        ax.plot(xs, [line["points"][x] for x in xs], marker="o", color=color, label=f"{line['model']} ({h})")
        last = line["points"][xs[-1]]
        notes.append(f"{line['model']} (train {h}): loss {line['points'][xs[0]]:.3f} -> {last:.3f} over "
                     f"{xs[-1]:,} tokens, {len(xs)} checkpoints")  # fmt: skip
        for (test_set, x), acc in sorted(line["acc"].items()):
            acc_ax = acc_ax or ax.twinx()
            acc_ax.scatter([x], [acc], color=color, marker="*" if test_set == "test_seen" else "s", s=60)
            notes.append(f"{line['model']} (train {h}) at {x:,} tokens: {test_set} fully correct {_pct(acc)}")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("training loss (mean since the previous checkpoint)")
    ax.legend(fontsize=7)
    if acc_ax is not None:
        acc_ax.set_ylim(0, 1.05)
        acc_ax.set_ylabel("fully correct (squares test_id, stars test_seen)")
    return notes[:12], fig


TRAINING = (
    "training_curves",
    "Training — loss curves and accuracy per checkpoint",
    "The paper trains GPT2-12-12 for 100k steps (med) / 200k (hard) on ~120M fresh problems and reports the "
    "final model; its curves are not in the paper. Shown here: every train step's loss at each checkpoint, and "
    "accuracy wherever a checkpoint was evaluated (`tensorboard --logdir $PHYSLM_ROOT/train` shows the same).",
    _curves,
)
"""The report's first section: not a paper figure (so not run by the analyze step)."""


# ---------------------------------------------------------------------------------------------------------
# Sections: (query, title, the paper's finding (spec C.3-C.7, paraphrased), renderer)

SECTIONS = [
    (
        "accuracy_by_op",
        "E2 · Fig. 3 — accuracy by test set and decoding",
        "Fully-correct accuracy is about 99% in distribution and degrades with the number of operations, to "
        "about 80% at the largest out-of-distribution op; beam 4 is no better than greedy (spec C.3).",
        _accuracy,
    ),
    (
        "unnecessary",
        "E3 · Fig. 4 — unnecessary parameters per correct solution",
        "On the standard test sets the model almost never computes an unnecessary parameter (shortest "
        "solutions, a 'level-1' skill); on re-ask data about 0.5 per correct solution even at op = 32 (spec C.4).",
        _unnecessary,
    ),
    (
        "probe_accuracy",
        "E4 · Fig. 7a — probe accuracy per task vs baselines",
        "The V-probe is highly accurate on all six tasks, far above the majority guess (83% on dep, 92% on "
        "nece_next) and the same probe on a random-init model; the model plans nece(A) before writing anything "
        "and tracks known/value/can_next/nece_next while solving; can_next ≈ 99% (spec C.5).",
        _probe_accuracy,
    ),
    (
        "probe_unnecessary",
        "E5 · Fig. 7b — dep and can_next for unnecessary A",
        "dep(A, B) and can_next(A) stay accurate for unnecessary A: the model computes the all-pair dependency "
        "graph, a 'level-2' skill the training data never requires (spec C.5).",
        _probe_accuracy,
    ),
    (
        "probe_by_label",
        "E6 · Fig. 12 — dep and nece_next on positives / negatives",
        "Split by the true label the probe is accurate on both sides: its accuracy is no majority guess (spec C.5).",
        _probe_by_label,
    ),
    (
        "error_unnecessary_plan",
        "E7 · Fig. 8a — unnecessary steps come from a wrong plan",
        "In correct re-ask solutions with unnecessary parameters A, the nece(A) probe at the end of the "
        "question is often wrongly true: the extra steps were planned before the solution started (no number "
        "given; a high share confirms it) (spec C.6a).",
        _error_plan,
    ),
    (
        "error_not_ready",
        "E8 · Fig. 8b — wrong steps: the model believed A was ready",
        "For the first wrong parameter A of a wrong solution whose true can_next(A) / nece_next(A) is false, "
        "the probe often does not say false: the model believed A computable, so mistakes are systematic and "
        "predictable from its state (Part 2.2: can_next says false for ≈60%) (spec C.6b).",
        _error_ready,
    ),
    (
        "depth_width",
        "E9 · Fig. 9 — depth × width",
        "Best of 2 seeds × beam {1, 4}: 4-layer models underperform even at 1920 dims; 20-layer 576-dim does "
        "very well: accuracy tracks depth, not size (spec C.7).",
        _depth_width,
    ),
    (
        "layer_distance",
        "E10 · Figs. 10/14 — nece probe per layer × distance",
        "Shallow layers get nece(A) right for parameters close to the query; larger distances t need deeper "
        "layers (spec C.7).",
        _layer_distance,
    ),
]
assert [s[0] for s in SECTIONS] == list(QUERIES)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _html_table(table, max_rows: int = 60) -> str:
    cols = table.column_names
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(queries.cell(r[c]))}</td>" for c in cols) + "</tr>"
        for r in table.slice(0, max_rows).to_pylist()
    )
    more = f"<p>{table.num_rows - max_rows} more rows not shown.</p>" if table.num_rows > max_rows else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _section(name: str, title: str, finding: str, render, table) -> str:
    out = [
        f'<section id="{name}"><h2>{html.escape(title)}</h2>',
        f'<p class="paper"><b>Paper:</b> {html.escape(finding)}</p>',
    ]
    if table.num_rows == 0:
        out.append('<p class="nodata"><b>Ours:</b> no data yet.</p>')
    else:
        try:
            notes, fig = render(table.to_pylist())
            img = base64.b64encode(_png(fig)).decode()
            out.append("<p><b>Ours:</b></p><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
            out.append(f'<img alt="{html.escape(title)}" src="data:image/png;base64,{img}">')
        except Exception as e:  # a plot bug must not cost the rest of the page: say so, show the rows
            plt.close("all")
            out.append(f'<p class="nodata">plot failed: {html.escape(type(e).__name__)}: {html.escape(str(e))}</p>')
        out.append(
            f"<details><summary>{table.num_rows} rows (query <code>{name}</code>)</summary>"
            f"{_html_table(table)}</details>"
        )
    return "\n".join(out) + "</section>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
section{border-top:1px solid #ddd;padding:.5em 0 1em}
.paper{background:#f4f6fa;padding:.5em .8em;border-left:4px solid #4c72b0}
.nodata{color:#888;font-style:italic}img{max-width:100%;display:block;margin:.5em 0}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
details{margin:.3em 0}code{background:#f0f0f0;padding:0 3px}"""


def build_report(out_dir: str, root: str | None = None) -> str:
    """Query the warehouse under ``root``, write ``{out_dir}/index.html`` (if it changed); returns its URL/path."""
    root = storage.root() if root is None else root
    tables = queries.run_queries((*QUERIES, TRAINING[0]), root)
    sections = [_section(name, title, finding, render, tables[name])
                for name, title, finding, render in (TRAINING, *SECTIONS)]  # fmt: skip
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>physlm report</title>'
        f"<style>{STYLE}</style></head><body><h1>physlm report — Physics of LMs 2.1 (iGSM)</h1>"
        f"<p>Root <code>{html.escape(root)}</code>. Each section: the paper's finding, our value "
        f"from the canned query of the same name (<code>physlm sql --query NAME</code>), the plot, "
        f"the rows.</p>\n" + "\n".join(sections) + "</body></html>\n"
    )
    url = storage.join(out_dir, "index.html")
    # The page is a pure function of the warehouse (no clock in it): an unchanged page is not rewritten, so a
    # rerun over cached results touches nothing.
    if not (storage.exists(url) and storage.read_bytes(url) == page.encode()):
        storage.write_bytes(url, page.encode())
    return url


def default_out(root: str | None = None) -> str:
    """``{root}/report`` for a local root; ``./physlm-report`` when the root is on S3."""
    import os

    root = storage.root() if root is None else root
    return os.path.abspath("physlm-report") if storage.is_s3(root) else storage.join(root, "report")
