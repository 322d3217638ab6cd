"""``nil sweep``: train every (budget, depth, seed) shape at fixed parameter budgets, capture its
interaction metrics, and keep one row per run in DIR/runs.parquet (resumable)."""

from __future__ import annotations

import argparse
import ast
import math
import time
from typing import Any

__all__ = ["register", "parse_count", "parse_int_list"]

_EXAMPLE = """\
examples:
  nil sweep --preset demo --out demo-sweep        # small CPU sweep with capture, a few minutes
  nil sweep --family gpt --task bytes --budgets 0.3M,1M --depths 1,2,3,4,6,8 --seeds 3 \\
      --data-ratio 60 --out ntp-sweep             # byte LM on Python's own sources, every GPU
  nil sweep --family mlp --task ts-mlp --budgets 50k --depths 2,3,4,6 --seeds 2 \\
      --task-arg in_dim=32 --task-arg out_dim=16 --min-width 8 --multiple 4 --out ts --no-capture
  nil sweep ... --time-limit 420                  # train at most 7 minutes, then stop cleanly
Re-running a command resumes it: finished runs are skipped, interrupted ones redone; other
settings into the same --out are refused unless --append. On a GPU runs
are packed (the seeds of a shape as one batched model, CUDA graphs, several runs at once) with
the same results as one at a time; --runs-per-gpu 1 trains them one at a time."""


def parse_count(text: str) -> int:
    """'300000', '300k', '0.3M', '1e6' → an integer."""
    t = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000, "g": 1_000_000_000}.get(t[-1:], 1)
    if scale != 1:
        t = t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a count: {text!r} (examples: 300000, 300k, 0.3M)") from None
    if value <= 0 or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"a budget must be positive, found {text!r}")
    return int(round(value))


def parse_int_list(text: str) -> list[int]:
    """'1,2,3' or '2-6' (inclusive) or a mix: '1,2,4-6' → integers."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    if not out:
        raise argparse.ArgumentTypeError(f"an empty list: {text!r}")
    return out


def _budgets(text: str) -> list[int]:
    return [parse_count(t) for t in text.split(",") if t.strip()]


def _key_value(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, found {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def _literal(v: str) -> Any:
    if v.lower() in ("none", "null"):
        return None
    try:
        return ast.literal_eval(v)
    except (ValueError, SyntaxError):
        return v


def _mean_se(mean: float, se: float) -> str:
    return f"{mean:.4g}" if not math.isfinite(se) else f"{mean:.4g}±{se:.1g}"


def register(sub: Any) -> None:
    """Adds the ``sweep`` verb."""
    p = sub.add_parser(
        "sweep",
        help="train shapes (depth x width) at fixed parameter budgets and tabulate their metrics",
        description=(
            "For every budget N, depth and seed: solve the width whose closed-form parameter count "
            "fits N, train the model on the task with a data budget of RATIO x N supervised units, "
            "capture its per-layer input AGOPs, projected output AGOP and WtW metrics, and append "
            "one row to DIR/runs.parquet. Feed that table to `nil interval`."
        ),
        epilog=_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--preset", choices=["demo"], help="start from a named sweep (flags given override it)")
    p.add_argument("--family", choices=["mlp", "cnn", "gru", "gpt", "bottleneck"],
                   help="model family (default: the task's only one, e.g. bottleneck for --task bottleneck)")
    p.add_argument("--task", help="ts-mlp, ts-gpt (teacher-student), bytes (byte LM), digits, bottleneck (the "
                                  "double-descent toy: width = the bottleneck, depth 1, --task-arg data_size=N "
                                  "sets the training set)")
    p.add_argument("--budgets", type=_budgets, help="parameter budgets, e.g. 300k,1M")
    p.add_argument("--depths", type=parse_int_list, help="depths, e.g. 1,2,3,4,6,8 or 2-8")
    p.add_argument("--seeds", type=int, help="seeds per shape: 0..S-1 (default 3)")
    p.add_argument("--data-ratio", type=float, help="supervised units per parameter, D = RATIO x N (default 20)")
    p.add_argument("--out", required=True, help="output directory (created; re-use it to resume)")
    p.add_argument("--append", action="store_true",
                   help="add runs of a different configuration to an existing --out (refused without it; "
                        "the same command, or more budgets, depths or seeds, resume without it)")
    p.add_argument("--task-arg", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="task option, e.g. in_dim=32, corpus=PATH, teacher_width=128 (repeatable)")
    p.add_argument("--model-arg", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                   help="model option, e.g. head_dim=8, style=plain, attention=explicit (repeatable)")
    g = p.add_argument_group("width solver (METHOD 4.2)")
    g.add_argument("--rule", choices=["pad", "closest"], help="pad: largest fitting width plus zero pad (default); closest: nearest count")
    g.add_argument("--multiple", type=int, help="width step (family default: head_dim, 16, 8)")
    g.add_argument("--min-width", type=int, help="smallest width considered")
    g.add_argument("--max-width", type=int, help="largest width considered")
    g.add_argument("--max-pad", type=float, help="skip shapes whose pad exceeds this fraction of N")
    t = p.add_argument_group("training")
    t.add_argument("--train-preset", choices=["nil", "reference-ntp", "reference-ts", "reference-mlp"],
                   help="optimiser/schedule preset (default nil: the reference optimiser, no decay on norms/embeddings)")
    t.add_argument("--lr", type=float, help="peak learning rate")
    t.add_argument("--batch-size", type=int, help="training batch size")
    t.add_argument("--weight-decay", type=float, help="AdamW weight decay")
    t.add_argument("--warmup", type=int, help="linear warm-up steps")
    t.add_argument("--step-factor", type=float, help="max steps = FACTOR x one pass over D")
    t.add_argument("--eval-every", type=int, help="steps between validation evaluations")
    t.add_argument("--max-steps", type=int, help="cap the steps of every run (quick checks)")
    t.add_argument("--precision", choices=["auto", "bf16", "fp32"],
                   help="auto: bfloat16 autocast on CUDA, float32 on the CPU (the preset's otherwise)")
    c = p.add_argument_group("capture")
    c.add_argument("--capture", action=argparse.BooleanOptionalAction, default=None,
                   help="capture interaction metrics after training (default on)")
    c.add_argument("--project", type=int, help="projected output dimension k (default 64)")
    c.add_argument("--probes", type=int, help="Gaussian probes for the input AGOPs (default 8)")
    c.add_argument("--symbolic", type=int, metavar="N_PLAYERS",
                   help="also record symbolic-interaction columns (symbolic_*) on 16 capture samples with N players "
                        "(off by default; docs/symbolic.md)")
    r = p.add_argument_group("where to run")
    r.add_argument("--device", help="auto (every visible GPU, else CPU), cpu, cuda or cuda:N")
    r.add_argument("--ray", metavar="ADDRESS", help="schedule runs as Ray tasks: 'local' or a cluster address")
    r.add_argument("--threads", type=int, help="torch threads per CPU worker (default 1)")
    r.add_argument("--runs-per-gpu", type=int, metavar="N",
                   help="runs trained at once per device, packed (default: packed on a GPU, as many as memory "
                        "admits up to 32; one at a time on the CPU); 1: one at a time, unpacked")
    r.add_argument("--no-cuda-graphs", action="store_true", help="packed runs: issue every step eagerly")
    r.add_argument("--pack-memory", type=float, metavar="FRACTION",
                   help="packed runs: share of GPU memory they may fill (default 0.85)")
    r.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="stop after SECONDS: runs that cannot finish are not started, runs still training "
                        "are abandoned (redone next time); the table stays consistent; exit 0")
    p.add_argument("--all-metrics", action="store_true",
                   help="summary: also show metric columns that are nan in every run (e.g. not captured)")
    p.add_argument("--plan", action="store_true", help="print the planned shapes and exit without training")
    p.add_argument("--no-progress", action="store_true", help="no progress bars: one line per finished run on stderr")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The sweep's keyword arguments: preset, then defaults, then the flags given."""
    from ..errors import NilValueError
    from ..sweep import PRESETS, train_config
    from ..tasks import parse_task_options
    from ..train import PRESETS as TRAIN_PRESETS

    s: dict[str, Any] = {"seeds": 3, "data_ratio": 20.0, "rule": "pad", "device": "auto", "threads": 1,
                         "train": TRAIN_PRESETS["nil"], "capture": {}, "task_options": {}, "model_options": {},
                         "width_options": {}}
    if args.preset:
        s.update({k: (dict(v) if isinstance(v, dict) else v) for k, v in PRESETS[args.preset].items()})
    for flag, key in (("family", "family"), ("task", "task"), ("budgets", "budgets"), ("depths", "depths"),
                      ("seeds", "seeds"), ("data_ratio", "data_ratio"), ("rule", "rule"), ("device", "device"),
                      ("ray", "ray"), ("threads", "threads"), ("runs_per_gpu", "runs_per_gpu"),
                      ("pack_memory", "pack_memory"), ("time_limit", "time_limit")):
        if getattr(args, flag) is not None:
            s[key] = getattr(args, flag)
    if "family" not in s and "task" in s:
        from ..tasks import TASKS, make_task

        if s["task"] in TASKS and len(make_task(s["task"]).families) == 1:
            s["family"] = make_task(s["task"]).families[0]
    missing = [k for k in ("family", "task", "budgets", "depths") if k not in s]
    if missing:
        raise NilValueError(f"missing {', '.join('--' + m for m in missing)} (or use --preset demo)")
    s["task_options"] = {**s["task_options"], **parse_task_options(s["task"], dict(args.task_arg))}
    s["model_options"] = {**s["model_options"], **{k: _literal(v) for k, v in args.model_arg}}
    for flag in ("multiple", "min_width", "max_width", "max_pad"):
        if getattr(args, flag) is not None:
            s["width_options"][flag] = getattr(args, flag)
    train = TRAIN_PRESETS[args.train_preset] if args.train_preset else train_config(s["train"])
    changes = {k: v for k, v in (("lr", args.lr), ("batch_size", args.batch_size), ("weight_decay", args.weight_decay),
                                 ("warmup_steps", args.warmup), ("step_factor", args.step_factor),
                                 ("eval_every", args.eval_every), ("max_steps", args.max_steps),
                                 ("precision", args.precision)) if v is not None}
    s["train"] = train.replace(**changes)
    if args.capture is False:
        if args.symbolic is not None:
            raise NilValueError("--symbolic runs in the capture step; drop --no-capture")
        s["capture"] = False
    else:
        cap = dict(s["capture"] or {})
        if args.project is not None:
            cap["project"] = args.project
        if args.probes is not None:
            cap["probes"] = args.probes
        if args.symbolic is not None:
            cap["symbolic"] = args.symbolic
        s["capture"] = cap
    return s


def run(args: argparse.Namespace) -> int:
    """Plans, runs or resumes the sweep and prints its summary."""
    from ..sweep import plan_sweep, summarize, sweep
    from ._table import print_json, print_table, say

    s = _settings(args)
    if args.plan:
        plan = plan_sweep(s["family"], s["task"], s["budgets"], s["depths"], s["seeds"], data_ratio=s["data_ratio"],
                          task_options=s["task_options"], model_options=s["model_options"], rule=s["rule"],
                          width_options=s["width_options"], train=s["train"])
        from ..sweep_run import run_schedule

        shapes = {(r.budget, r.depth): r for r in plan.runs}
        rows = [{"budget": r.budget, "depth": r.depth, "width": r.width, "ratio": r.depth / r.width,
                 "active_params": r.active_params, "pad_ratio": r.pad_params / r.budget, **run_schedule(r)}
                for r in shapes.values()]
        if args.json:
            steps = sum(run_schedule(r)["max_steps"] for r in plan.runs)
            print_json({"shapes": rows, "skipped": plan.skipped, "runs": len(plan.runs), "max_steps_total": steps})
        else:
            print_table(f"Planned shapes ({len(plan.runs)} runs)", list(rows[0]) if rows else ["budget"], rows)
            for sk in plan.skipped:
                say(f"skipped: {sk['reason']}")
        return 0
    t0 = time.perf_counter()
    table = sweep(s["family"], s["task"], s["budgets"], s["depths"], s["seeds"], out=args.out,
                  data_ratio=s["data_ratio"], task_options=s["task_options"], model_options=s["model_options"],
                  rule=s["rule"], width_options=s["width_options"], train=s["train"], capture=s["capture"],
                  device=s["device"], ray=s.get("ray"), threads=s["threads"], progress="lines" if args.no_progress else True,
                  runs_per_gpu=s.get("runs_per_gpu"), cuda_graphs=False if args.no_cuda_graphs else None,
                  pack_memory=s.get("pack_memory", 0.85), time_limit=s.get("time_limit"), append=args.append)
    outcome = table.attrs.get("outcome", {})
    metrics = [m for m in ("agop_aofe_ratio_mean", "out_aofe_ratio", "nfa_pearson_mean") if m in table
               and (args.all_metrics or table[m].astype(float).notna().any())]
    rows = summarize(table, metrics)
    wall = time.perf_counter() - t0
    if args.json:
        print_json({"summary": rows, "runs": len(table), "seconds": wall, "out": str(args.out), "outcome": outcome})
        return 0
    short = {"agop_aofe_ratio_mean": "AGOP ratio", "out_aofe_ratio": "out ratio", "nfa_pearson_mean": "NFA r"}
    display = [{"budget": r["budget"], "depth": r["depth"], "width": r["width"], "R_D/W": r["ratio"],
                "test loss": _mean_se(r["test_loss"], r["test_loss_se"]),
                **{short[m]: r.get(m, math.nan) for m in metrics}, "best": "<-" if r.get("best") else ""}
               for r in rows]
    cols = ["budget", "depth", "width", "R_D/W", "test loss", *[short[m] for m in metrics], "best"]
    print_table(f"Shape sweep: {s['family']} on {s['task']} (mean±se over {rows[0]['seeds'] if rows else 0} seeds; <- lowest per budget)",
                cols, display)
    say(f"{len(table)} runs in {args.out}/runs.parquet; {wall:.1f} s. Next: nil interval {args.out}/runs.parquet")
    if outcome and not outcome.get("complete", True):
        say(incomplete_line(outcome))
    return 0


def incomplete_line(outcome: dict[str, Any]) -> str:
    """Why a call left runs for the next one (``sweep.json``'s "outcome"): the limit passed, or
    the scheduler stopped early because no run left could finish within it."""
    left = outcome["planned"] - outcome["already_done"] - outcome["finished"]
    limit = outcome.get("time_limit")
    if outcome.get("time_limit_reached") or limit is None:
        why = "time limit reached" if limit is None else f"time limit of {limit:g} s reached"
    else:
        why = f"stopped at {outcome.get('seconds', math.nan):.0f} s: no run left could finish within the {limit:g} s limit"
    return (f"{why}: {outcome['finished']} runs finished in this call, {left} left "
            f"({outcome['abandoned']} abandoned mid-run); re-run the same command to continue")
