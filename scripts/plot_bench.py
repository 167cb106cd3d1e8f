#!/usr/bin/env python3
"""Plots of a `memserve bench paper` run, from its results.json.

usage: plot_bench.py RESULTS.json OUT_DIR

Writes, and prints one per line:
  cdf_<workload>.png   TTFT and JCT CDFs of every configuration (successful requests)
  improvements.png     our changes beside the paper's, per workload
Needs matplotlib (pip install matplotlib).
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402


def cdf(values):
    xs = sorted(values)
    n = len(xs)
    return xs, [(i + 1) / n for i in range(n)]


def plot_cdfs(results, workload, out_dir):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = False
    for config in results["configurations"]:
        run = next((r for r in results["runs"] if r["configuration"] == config["name"] and r["workload"] == workload), None)
        if not run or not run.get("result"):
            continue
        records = [r for r in run["result"].get("records") or [] if r.get("error") is None]
        if not records:
            continue
        drawn = True
        for ax, key in zip(axes, ("ttft_ms", "jct_ms")):
            xs, ys = cdf([r[key] for r in records])
            ax.step(xs, ys, where="post", label=config["name"])
    if not drawn:
        plt.close(fig)
        return None
    for ax, title in zip(axes, ("TTFT", "JCT")):
        ax.set_title(f"{workload}: {title} CDF")
        ax.set_xlabel("ms")
        ax.set_ylabel("fraction of requests")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    name = f"cdf_{workload}.png"
    fig.savefig(os.path.join(out_dir, name), dpi=110)
    plt.close(fig)
    return name


def plot_improvements(results, out_dir):
    rows = [i for i in results.get("improvements", []) if i.get("ours") is not None or i.get("paper") is not None]
    workloads = [w for w in ("sharegpt", "loogle", "react") if any(i["workload"] == w for i in rows)]
    if not workloads:
        return None
    fig, axes = plt.subplots(len(workloads), 1, figsize=(11, 3.4 * len(workloads)), squeeze=False)
    for ax, w in zip(axes[:, 0], workloads):
        items = [i for i in rows if i["workload"] == w]
        labels = [i["comparison"].replace(" ", "\n") + f'\n{i["metric"].upper()} {i["stat"]}' for i in items]
        xs = range(len(items))
        ours = [i["ours"] if i.get("ours") is not None else 0 for i in items]
        paper = [i["paper"] if i.get("paper") is not None else 0 for i in items]
        ax.bar([x - 0.2 for x in xs], ours, width=0.4, label="ours")
        ax.bar([x + 0.2 for x in xs], paper, width=0.4, label="paper")
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("change, %")
        ax.set_title(f"{w}: change from baseline (negative is better)")
        ax.legend(fontsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    name = "improvements.png"
    fig.savefig(os.path.join(out_dir, name), dpi=110)
    plt.close(fig)
    return name


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    with open(sys.argv[1]) as f:
        results = json.load(f)
    out_dir = sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    names = [plot_cdfs(results, w["kind"], out_dir) for w in results["workloads"]]
    names.append(plot_improvements(results, out_dir))
    for n in names:
        if n:
            print(n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
