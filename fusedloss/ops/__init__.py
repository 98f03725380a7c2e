"""Op registration: schemas (``_library``), backend choice (``_backends``), one module per family."""
