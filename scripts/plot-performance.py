#!/usr/bin/env python3
"""Draws the charts of docs/performance.md from docs/performance-figures.json
into docs/images/ (PNG, matplotlib's Agg backend, no display needed):

- gpu-seed-batch.png: µs per fused seed batch, swift-hps against PyTorch's
  F.embedding and a device-to-device copy of the same output, one panel per card;
- gpu-1m-lookups.png: 1M random lookups from 4M keys as a share of the
  device-to-device copy's bandwidth, one panel per card, with the 90% target;
- cpu-lookups.png: CPU lookups × memcpy of the same bytes, every recorded run,
  per machine and thread count, with the one-core targets;
- serving.png: served seed-predict requests per second and one-sample p99 at
  2,000 req/s, GPU against CPU in the same run (H100 machine).

Every number comes from the JSON file, which holds them as strings exactly as
recorded in docs/archive/benchmarks-log.md. Figures of different cards are
drawn in separate panels, not side by side.

    python3 scripts/plot-performance.py            # writes docs/images/*.png
    python3 scripts/plot-performance.py --check    # also checks that every
                                                   # number of the JSON file is
                                                   # written in docs/performance.md
"""

import argparse
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIGURES = os.path.join(ROOT, "docs", "performance-figures.json")
PAGE = os.path.join(ROOT, "docs", "performance.md")
IMAGES = os.path.join(ROOT, "docs", "images")
DPI = 100

OURS = "#1f5fa8"
PEER = "#e07b39"
LIMIT = "#9a9a9a"


def number(text):
    """A recorded figure ("1,711.7", "0.38×") as a float."""
    return float(re.sub(r"[^0-9.]", "", text.replace(",", "")))


def area(figures, area_id):
    for entry in figures["areas"]:
        if entry["id"] == area_id:
            return entry["rows"]
    raise KeyError(area_id)


def save(fig, name):
    os.makedirs(IMAGES, exist_ok=True)
    path = os.path.join(IMAGES, name)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {os.path.relpath(path, ROOT)} ({os.path.getsize(path) // 1024} KB)")


def label_bars(ax, bars, texts=None):
    """Writes each bar's figure above it: the recorded string when given, else its height."""
    for i, bar in enumerate(bars):
        text = texts[i] if texts else f"{bar.get_height():g}"
        ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")


def microseconds(text, unit):
    """A recorded time in µs, and the string to print: ms figures are converted, µs kept as recorded."""
    if unit == "ms":
        value = number(text) * 1000.0
        return value, f"{value:.1f}"
    return number(text), text


def gpu_seed_batch(figures):
    rows = area(figures, "gpu-lookups")
    cards = ["H200", "H100"]
    fig, axes = plt.subplots(1, len(cards), figsize=(13, 4.6), gridspec_kw={"width_ratios": [5, 4]})
    for ax, card in zip(axes, cards):
        groups = []  # (label, ours, peer or None, copy or None), each (µs, text)
        for r in rows:
            if r.get("card") != card:
                continue
            if r.get("id") == "seed-fused":
                peer = microseconds(r["peer"]["value"], r["peer"]["unit"]) if "peer" in r else None
                groups.append((f"hps bench\n1 launch\n{r['commit']}\n{r['date']}", microseconds(r["value"], r["unit"]), peer, None))
            elif r.get("id", "").startswith("capi-"):
                groups.append((f"C interface\none call, {r['cache']}\n{r['commit']}\n{r['date']}",
                               microseconds(r["value"], r["unit"]), microseconds(r["peer"]["value"], r["peer"]["unit"]),
                               microseconds(r["limit"]["value"], r["limit"]["unit"])))
        width = 0.27
        for offset, index, color, label in [(-width, 1, OURS, "swift-hps"),
                                            (0, 2, PEER, "PyTorch F.embedding, same run (8 calls beside the C interface)"),
                                            (width, 3, LIMIT, "device-to-device copy of the output, same run")]:
            present = [(x, g[index]) for x, g in enumerate(groups) if g[index] is not None]
            if present:
                bars = ax.bar([x + offset for x, _ in present], [v[0] for _, v in present], width, color=color, label=label)
                label_bars(ax, bars, [v[1] for _, v in present])
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([g[0] for g in groups], fontsize=7)
        ax.set_ylabel("µs per seed batch (8 tables × 6,656 keys, vec 128)", fontsize=8)
        ax.set_title(f"{card} (not compared with the other card)", fontsize=9)
        ax.margins(y=0.12)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("Fused seed batch on the GPU, each group measured in one run", fontsize=10, y=1.02)
    save(fig, "gpu-seed-batch.png")


def gpu_1m(figures):
    rows = [r for r in area(figures, "gpu-lookups") if r.get("id") in ("1m-vec128", "1m-vec64")]
    cards = ["H200", "H100"]
    fig, axes = plt.subplots(1, len(cards), figsize=(8, 3.4), sharey=True)
    for ax, card in zip(axes, cards):
        mine = [r for r in rows if r["card"] == card]
        labels = [("vec 128" if r["id"] == "1m-vec128" else "vec 64") for r in mine]
        bars = ax.bar(labels, [number(r["limit"]["ratio"]) for r in mine], 0.5, color=OURS)
        label_bars(ax, bars, [r["limit"]["ratio"] for r in mine])
        ax.axhline(0.9, color=PEER, linestyle="--", linewidth=1, label="target 0.90")
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{card}, {mine[0]['commit']}, {mine[0]['date']}", fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("× device-to-device copy bandwidth", fontsize=8)
    fig.suptitle("1M random lookups from 4M keys (static table)", fontsize=10, y=1.02)
    save(fig, "gpu-1m-lookups.png")


def cpu_lookups(figures):
    rows = [r for r in area(figures, "cpu-lookups") if r.get("id") in ("seed-fused", "1m")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (row_id, title, target) in zip(axes, [("seed-fused", "seed batch, fused", 1.5),
                                                   ("1m", "1M random lookups from 4M keys, vec 128", 3.0)]):
        mine = [r for r in rows if r["id"] == row_id]
        for x, r in enumerate(mine):
            values = [number(v) for v in r["values"]]
            ax.scatter([x - 0.08] * len(values), values, color=OURS, s=18, zorder=3,
                       label="swift-hps, each run" if x == 0 else None)
            if r["limit"].get("gather_alone"):
                gather = [number(v) for v in r["limit"]["gather_alone"]]
                ax.scatter([x + 0.08] * len(gather), gather, facecolors="none", edgecolors=LIMIT, s=18, zorder=3,
                           label="the gather alone, no index" if x == 0 else None)
        ax.axhline(target, color=PEER, linestyle="--", linewidth=1, label=f"one-core target {target:g}×")
        ax.axhline(1.0, color=LIMIT, linewidth=0.8)
        ax.set_xticks(range(len(mine)))
        ax.set_xticklabels([f"{r['machine']}\n{r['threads']} thread{'s' if r['threads'] > 1 else ''}\n{r['commit']}"
                            for r in mine], fontsize=7)
        ax.set_xlim(-0.5, len(mine) - 0.5)
        ax.set_ylim(0, max(4.0, target + 0.5))
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    axes[0].set_ylabel("× memcpy of the same bytes, same run", fontsize=8)
    fig.suptitle("CPU lookups from host memory, 2026-11-30 (each machine against its own memcpy)", fontsize=10, y=1.02)
    save(fig, "cpu-lookups.png")


def serving(figures):
    rows = area(figures, "serving")
    predict = [r for r in rows if r.get("id", "").startswith("seed-predict-http")]
    one = next(r for r in rows if r.get("id") == "one-sample-2000")
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.35
    xs = range(len(predict))
    label_bars(left, left.bar([x - width / 2 for x in xs], [number(r["gpu"]["req_per_s"]) for r in predict], width,
                              color=OURS, label="from the GPU"), [r["gpu"]["req_per_s"] for r in predict])
    label_bars(left, left.bar([x + width / 2 for x in xs], [number(r["cpu"]["req_per_s"]) for r in predict], width,
                              color=LIMIT, label="from the CPU"), [r["cpu"]["req_per_s"] for r in predict])
    left.set_xticks(list(xs))
    left.set_xticklabels([f"{r['connections']} connection{'s' if r['connections'] > 1 else ''}" for r in predict], fontsize=8)
    left.set_ylabel("seed-predict requests/s (HTTP)", fontsize=8)
    left.set_title("seed-predict: 53,248 keys in, 256 predictions out", fontsize=9)
    left.legend(fontsize=7, loc="upper left")
    left.margins(y=0.15)
    label_bars(right, right.bar(["GPU", "CPU"], [number(one["gpu"]["p99_ms"]), number(one["cpu"]["p99_ms"])], 0.5,
                                color=[OURS, LIMIT]), [one["gpu"]["p99_ms"], one["cpu"]["p99_ms"]])
    right.axhline(2.0, color=PEER, linestyle="--", linewidth=1, label="target 2 ms")
    right.set_ylabel("p99 ms", fontsize=8)
    right.set_title("one-sample, open loop at 2,000 req/s", fontsize=9)
    right.legend(fontsize=7, loc="upper right")
    right.set_ylim(0, 2.5)
    fig.suptitle(f"hps serve --demo, {one['card']} machine, {one['commit']}, {one['date']}, one run", fontsize=10, y=1.02)
    save(fig, "serving.png")


def recorded_numbers(value):
    """Every figure string in a row (numbers only), for the check against the page."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("command", "source", "raw", "measurement", "name", "date", "commit", "id", "card", "machine",
                       "unit", "cache", "transport", "connections", "threads"):
                continue
            yield from recorded_numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from recorded_numbers(item)
    elif isinstance(value, str):
        for part in re.split(r" / |–", value):
            match = re.search(r"[0-9][0-9,]*(\.[0-9]+)?", part)
            if match:
                yield match.group(0)


def check(figures):
    page = open(PAGE, encoding="utf-8").read()
    missing = []
    for entry in figures["areas"]:
        for r in entry["rows"]:
            for figure in recorded_numbers(r):
                if figure not in page:
                    missing.append(f"{entry['id']}: {r['measurement']}: {figure}")
            if f"`{r['commit']}`" not in page:
                missing.append(f"{entry['id']}: {r['measurement']}: commit {r['commit']}")
    for line in missing:
        print(f"not in docs/performance.md: {line}", file=sys.stderr)
    return not missing


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="also check the JSON file's numbers against docs/performance.md")
    args = parser.parse_args()
    with open(FIGURES, encoding="utf-8") as file:
        figures = json.load(file)
    gpu_seed_batch(figures)
    gpu_1m(figures)
    cpu_lookups(figures)
    serving(figures)
    if args.check and not check(figures):
        sys.exit(1)


if __name__ == "__main__":
    main()
