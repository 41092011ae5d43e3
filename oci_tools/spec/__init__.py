"""The OCI documents as values: media types, JSON Schemas, parsed models, runtime config.

``spec`` knows JSON, not files: nothing here opens a layout or a blob.
"""
