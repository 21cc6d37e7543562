"""The op/dtype audit of msvision's compiled graphs against Ascend's AI Core (CPU, a few minutes per recipe):
python scripts/ascend_audit.py [--output ascend_ops.md] [--quick]. Compiles (does not run) every shipped Ascend
recipe's train step, eval and exported graph at 32 px and each random feature and step option, reads the ops and
dtypes from MindSpore's IR dump, and writes the table; exits 1 when the 910 or 910B lacks an op no exception names."""
from msvision.cli import run_cli


def table(rows):
    """The audit rows as a markdown table: op, dtypes, 910, 910B, graphs, source lines, CANN source."""
    from msvision.ascend.audit import NAMED_EXCEPTIONS
    from msvision.ascend.support import SUPPORT, lacking_dtypes

    def verdict(row, chip):
        lacking = lacking_dtypes(row.op, row.dtypes, chip)
        if not lacking:
            return "yes"
        return "excepted" if lacking <= set(NAMED_EXCEPTIONS.get(chip, {})) else "NO"

    lines = ["| op | dtypes | 910 | 910B | graphs | from | source |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        kinds = sorted({where.rsplit(": ", 1)[1] for where in row.graphs})
        source = SUPPORT[row.op].source if row.op in SUPPORT else "no row"
        lines.append(f"| {row.op} | {', '.join(row.dtypes) or '-'} | {verdict(row, '910')} | {verdict(row, '910B')} "
                     f"| {len(row.graphs)} ({', '.join(kinds)}) | {', '.join(row.origins[:3])} | {source} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    import mindspore as ms

    from msvision.ascend.audit import FEATURES, NAMED_EXCEPTIONS, RECIPES, audit, missing_on
    from msvision.errors import ArgumentParser
    from msvision.files import check_output, write_text

    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=None, help="write the table to this markdown file (default: print it)")
    parser.add_argument("--quick", action="store_true", help="the feature cases only (not every shipped recipe)")
    args = parser.parse_args(argv)
    if args.output:
        check_output(args.output, "the audit table")
    ms.set_device("CPU")
    ms.set_context(mode=ms.GRAPH_MODE)
    rows = audit(FEATURES if args.quick else RECIPES + FEATURES)
    text = table(rows)
    for chip, excused in NAMED_EXCEPTIONS.items():
        text += "".join(f"\nExcepted on the {chip}: {dtype}: {why}\n" for dtype, why in excused.items())
    missing = [(chip, why) for chip in ("910", "910B") for _, why in missing_on(rows, chip)]
    text += "".join(f"\nMISSING on the {chip}: {why}\n" for chip, why in missing)
    if args.output:
        write_text(args.output, text)
        print(f"{len(rows)} op/dtype rows written to {args.output}; {len(missing)} missing")
    else:
        print(text)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
