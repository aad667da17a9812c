"""Wall time and peak memory of a cold `rnnflow run` as the data grows.

Each size is `dataset.limit`: that many reviews are sampled (balanced) from the train split and as
many from the test split; the lesson's protocol otherwise (80/20 train/val, 2 epochs, word2vec on
the train part). Every run starts with an empty data cache. Writes a markdown table and a PNG.

    python -m bench.scaling --data ../shared/data/aclImdb_labeled.tar.gz --sizes 2500,25000
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from bench.peers import add_lesson_args
from bench.run import HERE, run_rnnflow


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    docs = [r["docs"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(docs, [r["wall_s"] for r in rows], "o-", label="wall")
    left.plot(docs, [r["fit_s"] for r in rows], "s--", label="of which fit")
    left.set(xlabel="train-split reviews (and as many test reviews)", ylabel="seconds",
             title="cold rnnflow run: time")
    left.legend()
    right.plot(docs, [r["peak_rss_mb"] for r in rows], "o-", color="tab:red")
    right.set(xlabel="train-split reviews (and as many test reviews)", ylabel="MB",
              title="peak RSS of the process tree", ylim=(0, None))
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--sizes", default="2500,5000,10000,25000")
    add_lesson_args(parser)
    parser.add_argument("--src", help="another checkout of rnnflow to measure (see run.py)")
    parser.add_argument("--work", default=str(HERE / ".work"))
    parser.add_argument("--out", default=str(HERE / "results" / "scaling"))
    args = parser.parse_args()
    work = Path(args.work).resolve()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        shutil.rmtree(work / "data", ignore_errors=True)
        args.limit = size
        result = run_rnnflow(f"cold {size}", args, args.neurons, work)
        rows.append({"docs": size, "wall_s": result["wall_s"],
                     "peak_rss_mb": result["peak_rss_mb"], "fit_s": result["stages"]["fit"],
                     "preprocess_s": result["preprocess_s"],
                     "test_accuracy": result["test_accuracy"]})
    lines = ["| train-split reviews | wall s | preprocess s | fit s | peak RSS MB | test acc |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['docs']} | {r['wall_s']:.1f} | {r['preprocess_s']:.1f} | {r['fit_s']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['test_accuracy']:.4f} |" for r in rows]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2))
    plot(rows, out.with_suffix(".png"))
    print("\n".join(lines))
    print(f"written: {out}.md, {out}.json, {out}.png")


if __name__ == "__main__":
    main()
