#!/usr/bin/env bash
# Report: the declared output `order_report`.
set -euo pipefail
{
    echo "order totals by customer"
    while IFS=, read -r name total; do printf '  %-8s %8s\n' "$name" "$total"; done < "$PIT_DATA_DIR/totals.csv"
} | tee "$PIT_DATA_DIR/report.txt"
