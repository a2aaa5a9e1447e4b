"""The REST API: request → validate → query storage → render JSON or CSV."""
