"""Open data: the DCAT-AP.de catalogue, the bulk files and the open summaries."""
