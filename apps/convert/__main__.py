"""Convert TD-MPC2's mt30/mt80 `.pt` chunks to `.npz`: `uv run apps/convert SRC DST`.

SRC is a folder of `chunk_<i>.pt` files (download: packages/mbdpo-data/README.md); DST gets one
`chunk_<i>.npz` per chunk and a `manifest.json`. Nothing in a `.pt` file is executed: only its
TensorDict, tensor and storage records are read. Rerunning the same command skips every chunk
already converted and verified, so an interrupted conversion continues where it stopped.
Examples:
    uv run apps/convert data/mt80-pt data/mt80 --jobs 4
    uv run apps/convert data/mt30-pt data/mt30 --dataset mt30
Exit status: 0 done; 1 a chunk is corrupt or a write failed; 2 bad arguments (nothing written);
130/143 interrupted (rerun to continue).
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys

from mbdpo_core.errors import ConfigError, DataFormatError
from mbdpo_data.convert import convert
from mbdpo_data.layouts import LAYOUTS


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="apps/convert",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("src", metavar="SRC", help="folder of TD-MPC2 chunk_<i>.pt files")
    parser.add_argument("dst", metavar="DST", help="folder for the .npz chunks and manifest.json")
    parser.add_argument("--jobs", type=int, default=1, help="chunks converted in parallel")
    parser.add_argument(
        "--dataset",
        choices=sorted(LAYOUTS),
        help="which dataset SRC holds (default: told by the first chunk's T and widths)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="convert again chunks DST already holds (needed when a source chunk changed)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar and no line per chunk"
    )
    return parser.parse_args(argv)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C interrupts even when started from a shell that ignores SIGINT in background jobs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        manifest = convert(
            args.src,
            args.dst,
            jobs=args.jobs,
            dataset=args.dataset,
            overwrite=args.overwrite,
            progress=not args.quiet,
            **({"log": lambda line: None} if args.quiet else {}),
        )
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DataFormatError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        hint = " (the disk is full)" if err.errno in (errno.ENOSPC, errno.EDQUOT) else ""
        print(
            f"error: cannot convert: {err.strerror} ({err.filename}){hint}; fix it and rerun "
            "the same command, converted chunks are kept.",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted; rerun the same command to continue.", file=sys.stderr)
        return 130
    print(
        f"{args.dst}: {manifest['dataset']}, {len(manifest['chunks'])} chunks, "
        f"{manifest['episodes']} episodes of {manifest['episode_rows']} rows, "
        f"task ids {manifest['task_range']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
