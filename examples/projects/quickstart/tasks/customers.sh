#!/usr/bin/env bash
# Extract customers (a shell task running beside `orders`).
set -euo pipefail
cat > "$PIT_DATA_DIR/customers.csv" <<CSV
customer_id,name
c-1,Ada
c-2,Grace
CSV
echo "wrote 2 customers"
