"""`hdrcnn weights`: what is installed and where; install, download, inspect, export."""

from __future__ import annotations

import json
import sys

from .common import OK, USAGE, fail


def add_parser(sub) -> None:
    p = sub.add_parser(
        "weights",
        help="list, install, download, inspect or export weight files",
        description="Manage weight files. The authors' three files live in a "
        "user cache folder ($HDRCNN_WEIGHTS_DIR overrides it).",
    )
    wsub = p.add_subparsers(dest="action", metavar="ACTION")
    wsub.add_parser("list", help="known weight names, where they live, whether installed")
    i = wsub.add_parser("install", help="check a downloaded authors' file and install it")
    i.add_argument("name", help="hdrcnn, hdrcnn-compr or hdrcnn-compr-regularized")
    i.add_argument("file", help="the downloaded .npz")
    d = wsub.add_parser("download", help="download one of the authors' files (needs a network)")
    d.add_argument("name")
    s = wsub.add_parser("info", help="layout and metadata of a weight name or file")
    s.add_argument("params")
    e = wsub.add_parser("export", help="convert a weight file to the authors' layout or ours")
    e.add_argument("params")
    e.add_argument("dest")
    e.add_argument("--layout", choices=("authors", "ours"), default="authors")
    p.set_defaults(run=run, _parser=p)


def run(args) -> int:
    from .. import weights as W

    try:
        if args.action in (None, "list"):
            rows = W.available_weights()
            width = max(len(r["name"]) for r in rows)
            for r in rows:
                state = "installed" if r["installed"] else "missing  "
                print(f"{r['name']:<{width}}  {state}  {r['path']}  ({r['description']})")
            print(f"cache folder: {W.cache_dir()}")
            return OK
        if args.action == "install":
            print(f"installed {W.install(args.name, args.file)}")
            return OK
        if args.action == "download":
            print(f"installed {W.download(args.name)}")
            return OK
        if args.action == "info":
            w = W.load_weights(args.params)
            meta = {k: v for k, v in w.metadata.items()}
            print(
                json.dumps(
                    {
                        "source": w.source,
                        "width_factor": w.width_factor,
                        "linearize": w.linearize,
                        "blend": w.blend,
                        "tensors": len(w.tensors),
                        "parameters": int(sum(t.size for t in w.tensors)),
                        "metadata": meta,
                    },
                    indent=2,
                    sort_keys=True,
                    default=str,
                )
            )
            return OK
        if args.action == "export":
            w = W.load_weights(args.params)
            if args.layout == "authors":
                if w.width_factor != 1.0:
                    print(
                        f"note: width factor {w.width_factor:g}; the authors' release only "
                        "builds the width-1.0 network",
                        file=sys.stderr,
                    )
                W.write_authors_npz(w, args.dest)
            else:
                W.write_weights(w, args.dest)
            print(f"wrote {args.dest} ({args.layout} layout)")
            return OK
    except (W.WeightFileError, OSError) as err:
        return fail("weights", str(err))
    args._parser.print_help()
    return USAGE
