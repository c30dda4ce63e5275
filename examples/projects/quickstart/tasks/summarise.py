"""Summarise sales by region: Parquet in, Parquet out, through pit_sdk (no decorators)."""

from pit_sdk import get_secret, read_input, write_output

# A secret comes from pit's broker, never from the environment; pit masks it in this log.
print(f"calling the reporting API with token {get_secret('api_token')}")

sales = read_input("sales")
summary = sales.group_by("region").aggregate([("amount", "sum"), ("sale_id", "count")])
summary = summary.rename_columns(["region", "total", "sales"]).sort_by("region")
write_output("sales_by_region", summary)
for row in summary.to_pylist():
    print(f"{row['region']:>6}: {row['sales']} sales, {row['total']:.2f}")
