"""Run one ablation: every arm x seed a run of the training engine, then the
table, the claims' verdicts and the plots.

    python scripts/ablate.py --list
    python scripts/ablate.py skip                        # the full budget -> experiments/results/skip/
    python scripts/ablate.py skip --quick                # a smoke run -> runs/ablations_quick/skip/
    python scripts/ablate.py skip --config.parallel=mesh --config.num_steps=4000   # overrides for every arm
    python scripts/ablate.py skip --lanes 2              # two runs at a time, one per core (CPU)
    python scripts/ablate.py --summary                   # the claims/verdict table over experiments/results
    python scripts/ablate.py --summary --readme experiments/README.md   # ... written into its marked block
    python scripts/ablate.py --rescore                   # score every committed claim again, as one family

--rescore trains nothing: every committed result's claims are scored again from
its results.csv and run.json, with the detection comparisons
(experiments/detection/results.json), as one family (Holm's step-down at 0.05),
and claims.csv, table.md and run.json's claims are written again; --adopt-claims
NAME scores NAME against its config's claims and rules instead (the result's arms
and seeds must be the config's; run.json records that they were adopted after
the results). A full run (not --quick) into experiments/results rescores the
family when it finishes. run.json records the config's commit at the run's start
(design: experiments/README.md, "Designs fixed before the runs").

The same command after a kill trains nothing that finished and resumes the run
that was going on (workdirs under runs/ablations/NAME/ARM/seedN). Every
finished run also leaves a record in the output folder (OUT/runs/ARM/seedN.json):
on a machine without the workdirs the same command takes the finished runs
from there and trains only the rest, so an ablation longer than one sitting
finishes over several (--no-carry trains everything again). The output
folder is checked before any training starts: a committed (full) result is
written over only by a run of its own design (the same seeds, or more, the
same budget and arms); any other run goes under runs/ (without --out) or needs
--force, and --quick never writes over one. NAME is an identifier (a-z, 0-9,
_), never a path. Two ablations never write one output folder at once: the
second is refused naming the first. Exit status: 0 done, 1 diverged, 2 bad input, 130/143
interrupted (checkpoint saved; the same command resumes).
"""

from __future__ import annotations

import os
import shlex
import sys
import time

from jaxcnn.train import cli


def _root() -> str:
    """The checkout this jaxcnn lives in (its experiments/ablations and results), else the current directory
    (an installed jaxcnn run from a clone's root)."""
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return checkout if os.path.isdir(os.path.join(checkout, "experiments", "ablations")) else os.getcwd()


ROOT = _root()


def _check_out(out: str, quick: bool, config=None, force: bool = False, file_config=None) -> str:
    """The output folder, checked: writable, and a committed result there is written over only by its own
    design (jaxcnn.ablation.protect) or with --force; a --quick run never writes over one."""
    from jaxcnn.ablation import protect
    from jaxcnn.train.workdir import check_writable

    out = check_writable(out)
    run = protect.committed(out)
    if run is None:
        return out
    if quick:
        raise ValueError(f"{out} holds a full (not --quick) result; a --quick run never writes over it: pass "
                         "another --out.")
    differ = protect.differences(run, config, file_config) if config is not None else []
    if differ and not force:
        raise ValueError(f"{out} holds the committed result of another design: this run differs in "
                         f"{'; '.join(differ[:3])}; leave --out unset (it then goes under runs/), pass another "
                         "--out, or --force to replace the committed result.")
    return out


def _default_out(name: str, quick: bool, config, file_config=None) -> tuple[str, str]:
    """(output folder, a note or ''): experiments/results/NAME for the committed design, else under runs/."""
    from jaxcnn.ablation import protect

    if quick:
        return os.path.join(ROOT, "runs", "ablations_quick", name), ""
    committed_out = os.path.join(ROOT, "experiments", "results", name)
    run = protect.committed(committed_out)
    differ = protect.differences(run, config, file_config) if run is not None else []
    if not differ:
        return committed_out, ""
    out = os.path.join(ROOT, "runs", "ablations_custom", name)
    return out, (f"  not the committed design of {os.path.relpath(committed_out, ROOT)} ({'; '.join(differ[:3])}): "
                 f"writing to {os.path.relpath(out, ROOT)} instead (--out {os.path.relpath(committed_out, ROOT)} "
                 "--force replaces the committed result)")


MARKERS = ("<!-- overview:start -->", "<!-- overview:end -->")


def _summary(args) -> int:
    from jaxcnn import ablation
    from jaxcnn.train.records import replace_block

    if not os.path.isdir(args.results):
        cli.fail(f"no results folder {args.results}; pass --results DIR")
    order = ablation.list_ablations(args.ablations) if os.path.isdir(args.ablations) else []
    table = ablation.overview_table(args.results, order=order)
    print(table)
    if args.readme:
        try:
            replace_block(args.readme, MARKERS, table)
        except ValueError as e:
            cli.fail(str(e))
    return 0


def _rescore(args, argv) -> int:
    from jaxcnn import ablation
    from jaxcnn.ablation.rescore import rescore_all

    if not os.path.isdir(args.results):
        cli.fail(f"no results folder {args.results}; pass --results DIR")
    try:
        adopt = {n: ablation.load_ablation(n, args.ablations) for n in args.adopt_claims}
        command = "python scripts/ablate.py " + " ".join(shlex.quote(a) for a in argv)
        out = rescore_all(args.results, args.detection, adopt=adopt, command=command)
    except ValueError as e:
        cli.fail(str(e))
    changed = [r for r in out["rows"] if r.get("kind", "claim") == "claim" and r["verdict"] != r["verdict_unadjusted"]]
    print(f"family: {out['size']} claims (Holm at 0.05); {out['family']['checks']} checks, "
          f"{out['family']['not_compared']} comparisons not made and {out['family']['superseded']} superseded claims "
          f"left out; {len(changed)} verdicts change under Holm:")
    for r in changed:
        print(f"  {r['claim']}: {r['verdict_unadjusted']} -> {r['verdict']} (p {r['p_value']:.3g}, p_holm "
              f"{r['p_holm']:.3g})")
    return 0


def _main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The ablation NAME is the config (ABLATIONS/NAME.py, with ablation.quick under --quick); --config.KEY=VALUE
    # overrides its keys for every arm, and --print_config shows the result.
    p = cli.parser(__doc__, config_flag=False)
    p.add_argument("name", nargs="?", help="ablation name: ABLATIONS/NAME.py")
    p.add_argument("--quick", action="store_true", help="the ablation's smoke budget (ablation.quick)")
    p.add_argument("--out", help="output folder (default experiments/results/NAME, or runs/ablations_quick/NAME "
                                 "with --quick)")
    p.add_argument("--workdirs", help="where each arm x seed trains (default runs/ablations[_quick]/NAME/runs)")
    p.add_argument("--ablations", default=os.path.join(ROOT, "experiments", "ablations"),
                   help="directory of the ablation configs (default: the repository's experiments/ablations)")
    p.add_argument("--force", action="store_true",
                   help="write over a committed result in --out even when this run is not its design")
    p.add_argument("--no-carry", action="store_true",
                   help="train every run whose workdir is absent, even where OUT/runs holds its finished record")
    p.add_argument("--lanes", type=int, default=1,
                   help="train the runs in this many processes, each pinned to its share of the cores "
                        "(jaxcnn.ablation.lanes): small nets do not keep two cores busy from one process, so on a "
                        "2-core CPU --lanes 2 trains up to twice the runs per hour (default 1)")
    p.add_argument("--list", action="store_true", help="list the ablations and exit")
    p.add_argument("--summary", action="store_true",
                   help="print the claims / verdict / budget table of every committed result and exit")
    p.add_argument("--results", default=os.path.join(ROOT, "experiments", "results"),
                   help="with --summary: the folder of results (default experiments/results)")
    p.add_argument("--rescore", action="store_true",
                   help="score every committed claim again (results.csv, run.json, detection results.json) as one "
                        "family, write claims.csv, table.md and run.json again, and exit")
    p.add_argument("--adopt-claims", action="append", default=[], metavar="NAME",
                   help="with --rescore: score NAME against its config's claims and rules (recorded as adopted "
                        "after the results)")
    p.add_argument("--detection", default=os.path.join(ROOT, "experiments", "detection"),
                   help="with --rescore: the folder of the detection results.json (default experiments/detection)")
    p.add_argument("--readme", help=f"with --summary: also write the table between the lines {MARKERS[0]} and "
                                    f"{MARKERS[1]} of this Markdown file")
    from jaxcnn import ablation

    def load(args):
        if args.summary or args.rescore or args.list or not args.name:
            return None
        try:
            config = ablation.load_ablation(args.name, args.ablations)
        except ValueError as e:
            raise cli.UsageError(str(e)) from None
        return ablation.with_quick(config) if args.quick else config

    args, loaded = cli.parse(p, argv, load=load)

    if args.summary:
        return _summary(args)
    if args.rescore:
        return _rescore(args, argv)
    if args.list or not args.name:
        try:
            names = ablation.list_ablations(args.ablations)
        except ValueError as e:
            cli.fail(str(e))
        for n in names:
            print(f"{n}: {cli.load_config(os.path.join(args.ablations, n + '.py')).ablation.title}")
        if not args.list:
            cli.fail("name an ablation (see the list above), e.g. python scripts/ablate.py skip")
        return 0
    cli.setup_process()

    def job():
        config = loaded
        ablation.validate_ablation(config)
        if args.lanes != 1:
            try:  # more lanes than cores, fewer than one, or runs that must share a process: refused here
                ablation.lanes.core_groups(args.lanes)
            except ValueError as e:
                cli.fail(str(e))
            why = ablation.lanes.unsupported(config)
            if why:
                cli.fail(why)
        kind = "ablations_quick" if args.quick else "ablations"
        file_config = ablation.load_ablation(args.name, args.ablations)  # the design its file commits
        out, note = (args.out, "") if args.out else _default_out(args.name, args.quick, config, file_config)
        out = _check_out(out, args.quick, config, args.force, file_config)
        if note:
            print(note, flush=True)
        workdirs = args.workdirs or os.path.join(ROOT, "runs", kind, args.name, "runs")
        from jaxcnn._locks import target_lock

        with target_lock(os.path.join(out, ".ablate"), f"ablation results {out}"):  # a second writer is refused
            _run(config, out, workdirs)

    def _run(config, out, workdirs):
        ab = config.ablation
        print(f"{ab.name}: {ab.title}\n  {len(ab.arms)} arms x seeds {tuple(ab.seeds)}, {config.num_steps} steps "
              f"at batch {config.batch_size}; runs in {workdirs}", flush=True)
        load_before = ablation.report.load_average()
        from jaxcnn.ablation.design import design_commit

        design = design_commit(os.path.join(args.ablations, f"{args.name}.py"))  # before any run starts
        if design["uncommitted_changes"] and not args.quick:
            print(f"  note: {design['config']} has uncommitted changes: run.json will say the design was not "
                  "fixed before the runs (commit the config first)", flush=True)
        t0 = time.time()
        carry = None if args.no_carry else os.path.join(out, ablation.carried.FOLDER)
        say = lambda s: print(s, flush=True)  # noqa: E731
        result = (ablation.run_lanes(config, workdirs=workdirs, log=say, carry=carry, lanes=args.lanes)
                  if args.lanes != 1 else ablation.run_ablation(config, workdirs=workdirs, log=say, carry=carry))
        result["design"] = design
        wall = time.time() - t0
        command = "python scripts/ablate.py " + " ".join(shlex.quote(a) for a in argv)
        files = ablation.write_results(result, out, config=config, command=command, wall_time_s=wall,
                                       quick=args.quick, load_before=load_before)
        print(ablation.markdown_table(result["rows"], result["claims"]))
        if result["claims"]:
            print(ablation.claims_table(result["claims"]))
        print(f"wall time {wall:.0f} s; wrote " + ", ".join(os.path.relpath(f, ROOT) for f in files))
        if result["carried_runs"]:
            print(f"{len(result['carried_runs'])} of {len(ab.arms) * len(ab.seeds)} runs were carried from their "
                  f"records in {os.path.relpath(carry, ROOT)} (trained in an earlier invocation)")
        if not args.quick and os.path.dirname(os.path.abspath(out)) == os.path.abspath(args.results):
            from jaxcnn.ablation.rescore import rescore_all

            family = rescore_all(args.results, args.detection, command="python scripts/ablate.py --rescore",
                                 log=lambda s: None)
            print(f"the family of {family['size']} claims scored again (Holm at 0.05): verdicts in "
                  f"{os.path.relpath(out, ROOT)}/claims.csv and every other result's")

    return cli.main(job)


def main(argv=None) -> int:
    """The command (jaxcnn-ablate): its exit status; a Ctrl-C before training starts is one line and 130."""
    return cli.entry(lambda: _main(argv))


if __name__ == "__main__":
    sys.exit(main())
