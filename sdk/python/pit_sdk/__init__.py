"""pit_sdk: helpers for Python tasks that pit runs.

    from pit_sdk import get_secret, read_sql, output_sql, write_output, read_input, load_data

    conn = get_secret("claims_db")  # asks the run's SDK broker
    output_sql(conn, "SELECT * FROM staging.claims", "claims")  # -> $PIT_DATA_DIR/claims.parquet
    load_data("claims.parquet", "claims", "warehouse_db")  # the broker bulk-loads it

`get_param` reads the run's typed params from the environment. `get_secret`,
`get_secret_field`, `load_data`, `send_email`, `http_request` and the `ftp_*` functions ask
the broker at `PIT_SOCKET`;
`read_sql`, `output_sql`, `write_output` and `read_input` work in this process, on
`PIT_DATA_DIR` and the database. Importing this package needs only the standard library:
pyarrow, connectorx, pandas and polars are imported by the functions that use them (extras
`arrow`, `sql`, `pandas`, `polars`).
"""

from pit_sdk._client import (
    ftp_download,
    ftp_list,
    ftp_move,
    ftp_upload,
    get_secret,
    get_secret_field,
    load_data,
)
from pit_sdk._data import read_input, write_output
from pit_sdk._messages import HttpResponse, http_request, send_email
from pit_sdk._params import get_param, get_params
from pit_sdk._sql import output_sql, read_sql

__version__ = "0.1.0"

__all__ = [
    "HttpResponse",
    "ftp_download",
    "ftp_list",
    "ftp_move",
    "ftp_upload",
    "get_param",
    "get_params",
    "get_secret",
    "get_secret_field",
    "http_request",
    "load_data",
    "output_sql",
    "read_input",
    "read_sql",
    "send_email",
    "write_output",
]
