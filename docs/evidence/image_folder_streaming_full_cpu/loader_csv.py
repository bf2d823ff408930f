"""loader.txt (``bench.streaming loader`` output, two passes) -> loader.csv: one row per timed pass with its pass.
``PYTHONPATH=. python docs/evidence/image_folder_streaming_full_cpu/loader_csv.py``."""

from pathlib import Path

from bench.streaming import loader_csv

here = Path(__file__).parent
passes = {"# second pass": "second", "# 2026": "first"}  # the log's '#' lines: the heading of each pass


def heading(line: str) -> dict[str, object]:
    return {"pass": next((v for k, v in passes.items() if line.startswith(k)), None)}


count = loader_csv(here / "loader.txt", here / "loader.csv", heading)
print(f"{count} passes -> loader.csv")
