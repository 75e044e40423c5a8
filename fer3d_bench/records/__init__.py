"""The files a run leaves, as typed records: run info, fold results, the report; their I/O.

Each record has its schema id, `to_json`/`from_json` and its validation in one place, so the
job that writes a result and the report that reads it agree on one definition. Nothing here
imports torch.
"""
