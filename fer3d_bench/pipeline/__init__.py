"""The application layer: each command's work composed once, for the CLI, the demo and users.

- `splits`: the items a protocol is dealt from (a merged file, a dataset tree, or BU-3DFE's
  naming scheme) and the manifests written from them;
- `evaluate`: one fold trained from a manifest; a whole evaluation as plan + launch + report;
- `demo`: every stage on the generated sample.

The CLI only parses options, calls these and prints.
"""
