-- Seed the demo warehouse (an SQLite file): the whole script runs as one batch.
CREATE TABLE IF NOT EXISTS sales (
    sale_id INTEGER PRIMARY KEY,
    region  TEXT NOT NULL,
    amount  REAL NOT NULL
);
DELETE FROM sales;
INSERT INTO sales (sale_id, region, amount) VALUES
    (1, 'north', 120.0), (2, 'south', 75.5), (3, 'north', 42.0),
    (4, 'east', 310.25), (5, 'south', 18.0), (6, 'east', 64.75);
