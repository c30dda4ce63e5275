"""Extract orders into the run's data directory (a Python task run through uv)."""

import csv
import os
from pathlib import Path

from quickstart import ORDERS

out = Path(os.environ["PIT_DATA_DIR"]) / "orders.csv"
with out.open("w", newline="") as file:
    writer = csv.writer(file)
    writer.writerow(["order_id", "customer_id", "amount"])
    writer.writerows(ORDERS)
print(f"wrote {len(ORDERS)} orders to {out.name}")
