"""One file de-identified over and over, in one process: the pydicom path, the byte-level
path, and a plain copy of the same file, alternating round by round so a loaded machine
slows all three alike (issue 15, item 2). Files only: no database, consent or manifest.

``python -m benchmarks.deid_files [--rounds 7] [--files 200] [NAME ...]`` (names from
pydicom's test files; by default CT_small.dcm and the multi-frame examples_ybr_color.dcm,
30 frames)."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pydicom

CORPUS = Path(pydicom.__file__).parent / "data" / "test_files"


def _rates(source: Path, files: int, rounds: int) -> dict[str, float]:
    from datasets.deid import ConsentStamp, DeidContext, Option
    from datasets.deid_write import read_source, write_deidentified, write_deidentified_pydicom

    context = DeidContext(secret=b"bench", options=frozenset(Option.ALL))
    yes = ConsentStamp("YES")

    def copy(out: Path) -> None:
        for n in range(files):
            shutil.copyfile(source, out / f"{n}.dcm")

    def old(out: Path) -> None:
        for n in range(files):
            write_deidentified_pydicom(str(source), out / str(n), context, consent=yes)

    def new(out: Path) -> None:
        for n in range(files):
            write_deidentified(str(source), out / str(n), context, consent=yes)

    def new_shared_read(out: Path) -> None:
        # As an export runs it: the header read once for the safety check, then written.
        for n in range(files):
            header = read_source(str(source), context)
            write_deidentified(str(source), out / str(n), context, consent=yes,
                               header=header)

    ways = {"plain copy": copy, "pydicom path": old, "byte level": new,
            "byte level, read shared with the check": new_shared_read}
    try:
        from dicognito.anonymizer import Anonymizer

        anonymizer = Anonymizer()

        def dicognito(out: Path) -> None:
            for n in range(files):
                ds = pydicom.dcmread(source)
                anonymizer.anonymize(ds)
                ds.save_as(out / f"{n}.dcm")

        ways["dicognito (read, anonymise, write)"] = dicognito
    except ImportError:
        pass
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    for round_number in range(rounds):
        order = list(ways.items())
        if round_number % 2:
            order.reverse()
        for name, way in order:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp)
                start = time.perf_counter()
                way(out)
                seconds[name].append(time.perf_counter() - start)
    return {name: files / statistics.median(times) for name, times in seconds.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.deid_files")
    parser.add_argument("names", nargs="*", default=["CT_small.dcm", "examples_ybr_color.dcm"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    print(f"load average before: {os.getloadavg()}")
    for name in args.names:
        source = CORPUS / name
        rates = _rates(source, args.files, args.rounds)
        copy = rates["plain copy"]
        print(f"{name} ({source.stat().st_size:,} bytes), median of {args.rounds} rounds "
              f"of {args.files} files:")
        for way, rate in rates.items():
            print(f"  {way:<40} {rate:8.0f} files/s  {100 * rate / copy:5.1f} % of copy")
        print(f"  byte level / pydicom path: {rates['byte level'] / rates['pydicom path']:.1f}x")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
