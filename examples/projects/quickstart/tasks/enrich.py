"""Join orders with customers (run by a custom runner: `runner = "$ python3"`)."""

import csv
import os
from pathlib import Path

data = Path(os.environ["PIT_DATA_DIR"])
names = {row["customer_id"]: row["name"] for row in csv.DictReader((data / "customers.csv").open())}
totals: dict[str, float] = {}
for row in csv.DictReader((data / "orders.csv").open()):
    name = names[row["customer_id"]]
    totals[name] = totals.get(name, 0.0) + float(row["amount"])
with (data / "totals.csv").open("w") as file:
    file.writelines(f"{name},{total:.2f}\n" for name, total in sorted(totals.items()))
print(f"enriched {sum(1 for _ in totals)} customers")
