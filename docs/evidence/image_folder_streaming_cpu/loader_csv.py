"""loader.txt (``bench.streaming loader`` output) -> loader.csv: one row per timed pass, with its run's load.
``PYTHONPATH=. python docs/evidence/image_folder_streaming_cpu/loader_csv.py``."""

import re
from pathlib import Path

from bench.streaming import loader_csv

here = Path(__file__).parent
count = loader_csv(
    here / "loader.txt", here / "loader.csv", lambda line: {"load": float(re.search(r"load average ~?([\d.]+)", line)[1])}
)
print(f"{count} passes -> loader.csv")
