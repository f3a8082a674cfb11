"""Files outside the database: the Parquet export of archived academic years."""
