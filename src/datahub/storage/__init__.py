"""Every SQL statement of datahub lives in this package, as plain functions, connection first."""
