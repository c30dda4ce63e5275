-- A save task: pit streams this query's rows to data/sales.parquet.
SELECT sale_id, region, amount FROM sales ORDER BY sale_id;
